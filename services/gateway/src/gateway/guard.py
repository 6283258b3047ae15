"""Authenticate, then cap the body: before routing, before FastAPI reads a byte of the body.

FastAPI parses a JSON or multipart body before any dependency runs, so an API-key dependency would
let an unauthenticated client make the gateway spool a multi-gigabyte upload to disk before refusing
it. This pure ASGI middleware answers first:

- `/api/v1/*` without a valid key (`Authorization: Bearer <key>` or `X-API-Key`): 401, the body unread
  (the server stops reading and closes the connection after answering);
- a declared `Content-Length` over the route's cap: 413 at once;
- a streamed body (chunked, no `Content-Length`) is counted as the application reads it: 413 as soon
  as it passes the cap, and the application sees the client as gone.

Caps (bytes): `GATEWAY_MAX_BODY_BYTES` for every route, `KB_MAX_UPLOAD_BYTES` plus room for the
multipart framing for the knowledge-base uploads, `BATCH_MAX_BODY_BYTES` for JSON batch submissions
and validations, `BATCH_FILE_MAX_BYTES` for the same routes given a spreadsheet (multipart).
The bus's own message limit (`bus.limits`, `BUS_MAX_MESSAGE_BYTES`) is the second gate.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import Settings

PROTECTED_PREFIX = "/api/v1/"
# Multipart boundaries, part headers and the small form fields (name, parent_folder_id) around a file.
MULTIPART_ROOM = 64 * 1024
UPLOAD_ROUTES = ("/api/v1/knowledge-base/file", "/api/v1/knowledge-base/ingest")
BATCH_ROUTES = ("/api/v1/batch-calling/submit", "/api/v1/batch-calling/validate")


def presented_api_key(headers: Mapping[str, str]) -> str:
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")


def api_key_valid(presented: str, keys: list[str]) -> bool:
    return bool(presented) and any(hmac.compare_digest(presented.encode(), k.encode()) for k in keys)


def body_cap(settings: Settings, path: str, content_type: str = "") -> tuple[int, str]:
    """(the largest body in bytes a request to `path` may send, the setting that says so)."""
    normalised = path.rstrip("/")
    if normalised in UPLOAD_ROUTES:
        return settings.kb_max_upload_bytes + MULTIPART_ROOM, "KB_MAX_UPLOAD_BYTES"
    if normalised in BATCH_ROUTES:
        if content_type.lower().startswith("multipart/form-data"):
            return settings.batch_file_max_bytes, "BATCH_FILE_MAX_BYTES"
        return settings.batch_max_body_bytes, "BATCH_MAX_BODY_BYTES"
    return settings.max_body_bytes, "GATEWAY_MAX_BODY_BYTES"


async def _answer(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"success": False, "error": error, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: the connection cannot carry another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_large(cap: int, setting: str) -> tuple[int, str, str]:
    return (
        413,
        "Payload too large",
        f"The request body exceeds {cap} bytes, the limit of this route ({setting})",
    )


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.api_keys = settings.api_key_list

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = Headers(scope=scope)
        if (path.startswith(PROTECTED_PREFIX) or path == PROTECTED_PREFIX.rstrip("/")) and not api_key_valid(
            presented_api_key(headers), self.api_keys
        ):
            await _answer(send, 401, "Authentication failed", "Missing or invalid API key")
            return
        cap, setting = body_cap(self.settings, path, headers.get("content-type", ""))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _answer(send, *_too_large(cap, setting))
            return
        await self._counted(scope, receive, send, cap, setting)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, cap: int, setting: str) -> None:
        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refused = True
                    if not started:
                        await _answer(send, *_too_large(cap, setting))
                    # The application stops reading as if the client had gone; its answer is dropped.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:  # the application failing on the "disconnect" we made up is expected
                raise
