"""Authenticate (and authorise) first, cap every body, enforce the cap while streaming (issue 12,
"Limits before work").

Over real HTTP: the gateway app under uvicorn on loopback, a raw socket client that keeps sending
until the server answers, and a counter of the body bytes the server handed to the application.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access import Scope as KeyScope
from gateway.app import create_app
from gateway.auth import AccessService
from gateway.bootstrap import Container, bootstrap
from gateway.settings import Settings

from .conftest import API_KEY

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
PIECE = 64 * 1024
MIB = 1024 * 1024
KB_CAP = 2 * MIB
UPLOAD = "/api/v1/knowledge-base/file"
# The most uvicorn hands the application in one body message: what it buffered up to its high-water
# mark (64 KiB) plus one socket read (asyncio reads up to 256 KiB at once). The guard refuses within
# the message that passes the cap; how big that message is depends on how far the client got ahead
# (the guard's key check, a database read, lets the socket buffer fill first).
ONE_MESSAGE = 64 * 1024 + 256 * 1024


class BodyCounter:
    """Counts the body bytes the server hands to the application (outermost, test-only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting() -> Message:
            message = await receive()
            self.read += len(message.get("body", b""))
            return message

        await self.app(scope, counting, send)


@dataclass
class Gateway:
    port: int
    counter: BodyCounter
    settings: Settings
    access: AccessService

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    overrides = {"KB_MAX_UPLOAD_BYTES": KB_CAP, "GATEWAY_MAX_BODY_BYTES": MIB}  # MIB: the default
    box: Container = bootstrap(Settings.model_validate({**settings.model_dump(by_alias=True), **overrides}))
    counter = BodyCounter(create_app(box))  # lifespan off: only the request path is exercised
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(counter, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + DEADLINE_S
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.01)  # polling with a deadline
    try:
        yield Gateway(sock.getsockname()[1], counter, box.settings, box.access)
    finally:
        server.should_exit = True
        await task
        await box.http.aclose()
        await box.engine.dispose()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    return status, headers, await reader.readexactly(int(headers.get("content-length", "0")))


async def _send(
    port: int, path: str, headers: dict[str, str], total: int, *, chunked: bool, body: bytes = b""
) -> tuple[int, dict[str, Any], int]:
    """POST `total` bytes (`body`, then filler), stopping as soon as the server answers.

    Returns (status, JSON answer, bytes the client got onto the wire before the answer came)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"POST {path} HTTP/1.1", "Host: gateway", *(f"{k}: {v}" for k, v in headers.items())]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    answer = asyncio.create_task(_read_response(reader))
    data = body + b"x" * max(0, total - len(body))
    sent = 0
    deadline = time.monotonic() + DEADLINE_S
    try:
        while sent < total and not answer.done():
            assert time.monotonic() < deadline, "neither sent nor answered"
            piece = data[sent : sent + PIECE]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.wait(
                {drain, answer}, timeout=deadline - time.monotonic(), return_when="FIRST_COMPLETED"
            )
            if not drain.done():  # the server stopped reading and answered
                drain.cancel()
                with suppress(BaseException):
                    await drain
                break
            if drain.exception() is not None:  # the server closed the connection
                break
            sent += len(piece)
        if sent >= total and chunked and not answer.done():
            writer.write(b"0\r\n\r\n")
        status, _, raw = await asyncio.wait_for(answer, timeout=max(0.1, deadline - time.monotonic()))
    finally:
        answer.cancel()
        writer.close()
        with suppress(Exception):
            await writer.wait_closed()
    return status, json.loads(raw), sent


def _multipart(file_bytes: int) -> tuple[dict[str, str], bytes, int]:
    """Headers, the body's opening, and the total size of a multipart upload of `file_bytes` of text."""
    boundary = "guardboundary"
    opening = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    closing = f"\r\n--{boundary}--\r\n".encode()
    return (
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        opening,
        len(opening) + file_bytes + len(closing),
    )


AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize("credentials", [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}])
async def test_an_unauthenticated_200_mb_upload_is_refused_before_it_is_read(
    gateway: Gateway, chunked: bool, credentials: dict[str, str]
) -> None:
    """Before: FastAPI parsed (and spooled) all 200 MB, then the route's dependency answered 401."""
    headers, opening, total = _multipart(200 * 1000 * 1000)
    status, answer, sent = await _send(
        gateway.port, UPLOAD, {**headers, **credentials}, total, chunked=chunked, body=opening
    )
    assert status == 401
    assert answer == {
        "success": False,
        "error": "Authentication failed",
        "detail": "Missing or invalid API key",
    }
    assert gateway.counter.read == 0  # the application never got a byte of the body
    assert sent < 32 * MIB  # the answer came while the client was still sending (socket buffers aside)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_a_200_mb_upload_with_a_read_only_key_is_refused_403_before_it_is_read(
    gateway: Gateway, chunked: bool
) -> None:
    """The scope is checked where the key is: before the body (issue 12, API keys)."""
    _, read_key = await gateway.access.create_key("read-only", KeyScope.READ)
    headers, opening, total = _multipart(200 * 1000 * 1000)
    status, answer, sent = await _send(
        gateway.port, UPLOAD, {**headers, "X-API-Key": read_key}, total, chunked=chunked, body=opening
    )
    assert status == 403
    assert answer["success"] is False and answer["error"] == "Insufficient scope"
    assert gateway.counter.read == 0
    assert sent < 32 * MIB


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
async def test_a_200_mb_upload_past_the_keys_rate_limit_is_refused_429_before_it_is_read(
    gateway: Gateway, chunked: bool
) -> None:
    _, key = await gateway.access.create_key(
        "one", KeyScope.OPERATOR, rate_limit_per_s=0.01, rate_limit_burst=1
    )
    async with httpx.AsyncClient(base_url=gateway.url, timeout=DEADLINE_S) as api:
        assert (await api.get("/api/v1/agents", headers={"X-API-Key": key})).status_code == 200
    headers, opening, total = _multipart(200 * 1000 * 1000)
    status, answer, sent = await _send(
        gateway.port, UPLOAD, {**headers, "X-API-Key": key}, total, chunked=chunked, body=opening
    )
    assert status == 429
    assert answer["success"] is False and answer["error"] == "Rate limit exceeded"
    assert gateway.counter.read == 0
    assert sent < 32 * MIB


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize("path", [UPLOAD, "/api/v1/knowledge-base/ingest"])
async def test_an_authenticated_upload_over_the_cap_gets_413_while_it_streams(
    gateway: Gateway, chunked: bool, path: str
) -> None:
    headers, opening, total = _multipart(10 * KB_CAP)
    status, answer, sent = await _send(
        gateway.port, path, {**headers, **AUTH}, total, chunked=chunked, body=opening
    )
    assert status == 413
    assert answer["success"] is False and answer["error"] == "Payload too large"
    assert "KB_MAX_UPLOAD_BYTES" in answer["detail"]
    if chunked:  # counted while it streamed: refused just past the cap
        assert KB_CAP < gateway.counter.read <= KB_CAP + 64 * 1024 + ONE_MESSAGE
    else:  # the declared length alone is enough
        assert gateway.counter.read == 0
    assert sent < total


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize("path", ["/api/v1/agents", "/api/v1/knowledge-base/text", "/api/v1/tools/webhook"])
async def test_a_json_body_over_the_default_cap_gets_413(gateway: Gateway, chunked: bool, path: str) -> None:
    cap = gateway.settings.max_body_bytes
    body = json.dumps({"name": "big", "text": "x" * (3 * cap)}).encode()
    status, answer, _ = await _send(
        gateway.port,
        path,
        {**AUTH, "Content-Type": "application/json"},
        len(body),
        chunked=chunked,
        body=body,
    )
    assert status == 413
    assert answer["error"] == "Payload too large" and f"exceeds {cap} bytes" in answer["detail"]
    assert "GATEWAY_MAX_BODY_BYTES" in answer["detail"]
    assert gateway.counter.read <= cap + ONE_MESSAGE


async def test_normal_requests_are_unaffected(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=DEADLINE_S) as api:
        assert (await api.get("/health/live")).status_code == 200  # no key needed outside /api/v1
        listed = await api.get("/api/v1/agents", headers={"X-API-Key": API_KEY})
        assert listed.status_code == 200, listed.text
        created = await api.post(
            "/api/v1/agents", json={"name": "ok", "system_prompt": "x" * 500_000}, headers=AUTH
        )
        assert created.status_code == 202, created.text

        # An upload just under KB_MAX_UPLOAD_BYTES, streamed: the route takes it (and stages it).
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range((KB_CAP - 1024) // 1024):
                yield b"line of text " * 78 + b"\n"

        upload = await api.post(
            UPLOAD,
            files={"file": ("notes.txt", b"".join([c async for c in chunks()]), "text/plain")},
            headers=AUTH,
        )
        assert upload.status_code == 202, upload.text
        missing = await api.get("/api/v1/agents")
        assert missing.status_code == 401 and missing.json()["success"] is False


async def test_a_batch_submission_of_1000_recipients_with_dynamic_variables_reaches_the_route(
    gateway: Gateway,
) -> None:
    """A submission bigger than the default cap but that its commands can carry is let through."""
    recipients = [
        {"phone_number": f"+1415555{i:04d}", "dynamic_variables": {"order": f"#{i}", "note": "n" * 5000}}
        for i in range(1000)
    ]
    body = {"call_name": "c", "agent_id": "agent_missing", "phone_number_id": "pn", "recipients": recipients}
    pretty = json.dumps(body, indent=4).encode()
    assert gateway.settings.max_body_bytes < len(pretty) < gateway.settings.batch_max_body_bytes
    async with httpx.AsyncClient(base_url=gateway.url, timeout=DEADLINE_S) as api:
        response = await api.post(
            "/api/v1/batch-calling/submit",
            content=pretty,
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status_code == 404, response.text  # the route ran: no such agent
    huge = json.dumps({**body, "pad": "p" * gateway.settings.batch_max_body_bytes}).encode()
    status, answer, _ = await _send(
        gateway.port,
        "/api/v1/batch-calling/submit",
        {**AUTH, "Content-Type": "application/json"},
        len(huge),
        chunked=False,
        body=huge,
    )
    assert status == 413 and "BATCH_MAX_BODY_BYTES" in answer["detail"]
