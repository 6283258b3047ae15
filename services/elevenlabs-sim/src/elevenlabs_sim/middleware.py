"""ASGI middleware in front of every ``/v1`` route: request log, latency, injected faults, auth,
random failures — in that order, so an injected fault wins over auth and even a rejected request
shows up in the log. ``/_sim`` paths bypass all of it.

A fault with ``after`` lets the handler run first (the resource is created), then delays and/or
replaces its answer: "created, then 500" or "created, then time out" (a delay longer than the
client's timeout), the cases where a client cannot know whether its POST took effect.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elevenlabs_sim.state import Fault, SimState

_DEFAULT_FAULT_DETAIL: dict[int, tuple[str, str]] = {
    401: ("invalid_api_key", "Invalid API key"),
    404: ("not_found", "Not found"),
    408: ("request_timeout", "Request timed out"),
    409: ("conflict", "Conflict"),
    429: ("system_busy", "The system is experiencing heavy traffic, please try again later"),
    500: ("internal_server_error", "Internal server error"),
    502: ("bad_gateway", "Bad gateway"),
    503: ("service_unavailable", "Service temporarily unavailable"),
    504: ("gateway_timeout", "Gateway timeout"),
}


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": {"status": code, "message": message}}, status_code=status, headers=headers)


def _query(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if key in out:
            existing = out[key]
            out[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[key] = value
    return out


class SimMiddleware:
    def __init__(self, app: ASGIApp, state: SimState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replay = _replayer(body, receive)
        entry = await self._log(scope, body)

        async def send_and_record(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        response = await self._preflight(scope)
        if isinstance(response, Fault):
            await self._perform_then_fault(response, scope, replay, send_and_record)
            return
        if response is not None:
            await response(scope, replay, send_and_record)
            return
        await self.app(scope, replay, send_and_record)

    async def _perform_then_fault(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if fault.delay_ms:
            await asyncio.sleep(fault.delay_ms / 1000)
        if fault.status is not None:
            await _fault_response(fault)(scope, receive, send)
            return
        for message in held:
            await send(message)

    async def _preflight(self, scope: Scope) -> JSONResponse | Fault | None:
        """A response to send instead of running the handler, an ``after`` fault to apply once the
        handler ran, or None to run it."""
        state = self.state
        settings = state.settings
        if settings.latency_ms or settings.latency_jitter_ms:
            jitter = state.rng.uniform(0, settings.latency_jitter_ms) if settings.latency_jitter_ms else 0.0
            await asyncio.sleep((settings.latency_ms + jitter) / 1000)

        fault = next((f for f in state.faults if f.matches(scope["method"], scope["path"])), None)
        if fault is not None:
            fault.remaining -= 1
            state.faults = [f for f in state.faults if f.remaining > 0]
            if not fault.after:
                if fault.delay_ms:
                    await asyncio.sleep(fault.delay_ms / 1000)
                if fault.status is not None:
                    return _fault_response(fault)
                fault = None

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if headers.get("xi-api-key") != settings.api_key:
            return _error(401, "invalid_api_key", "Invalid API key")

        if settings.failure_rate and state.rng.random() < settings.failure_rate:
            if state.rng.random() < 0.5:
                return _error(429, "system_busy", _DEFAULT_FAULT_DETAIL[429][1], {"Retry-After": "1"})
            return _error(503, "service_unavailable", _DEFAULT_FAULT_DETAIL[503][1])
        return fault  # an `after` fault, applied once the handler ran

    async def _log(self, scope: Scope, body: bytes) -> dict[str, Any]:
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() != "xi-api-key"
        }
        content_type = headers.get("content-type", "")
        json_body: Any = None
        form: dict[str, Any] | None = None
        if body and "json" in content_type:
            try:
                json_body = json.loads(body)
            except ValueError:
                json_body = None
        elif body and content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await _form_fields(scope, body)
        entry: dict[str, Any] = {
            "id": len(self.state.request_log) + 1,
            "timestamp": time.time(),
            "method": scope["method"],
            "path": scope["path"],
            "query": _query(scope.get("query_string", b"")),
            "headers": headers,
            "json": json_body,
            "form": form,
            "status": None,
        }
        self.state.request_log.append(entry)
        return entry


def _fault_response(fault: Fault) -> JSONResponse:
    status = fault.status or 500
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
    if fault.body is not None:
        return JSONResponse(fault.body, status_code=status, headers=headers)
    code, message = _DEFAULT_FAULT_DETAIL.get(status, ("injected_fault", f"Injected fault {status}"))
    return _error(status, code, message, headers)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replayer(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _form_fields(scope: Scope, body: bytes) -> dict[str, Any] | None:
    request = Request(scope, receive=_replayer(body, _never))
    try:
        form = await request.form()
    except Exception:  # a malformed form is the handler's problem; the log just omits it
        return None
    fields: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            fields[key] = {"filename": value.filename, "content_type": value.content_type, "size": value.size}
        else:
            fields[key] = value
    await form.close()
    return fields


async def _never() -> Message:
    return {"type": "http.disconnect"}
