from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from elevenlabs_sim import SimSettings, create_app, lifecycle
from elevenlabs_sim.testing import free_port

API_KEY = "test-key"


@pytest.fixture
def sim_app() -> FastAPI:
    return create_app(SimSettings(api_key=API_KEY, seed=1))


@pytest.fixture
async def client(sim_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", headers={"xi-api-key": API_KEY}
    ) as c:
        yield c


WEBHOOK_TOOL = {
    "type": "webhook",
    "name": "save_note",
    "description": "Save a note",
    "api_schema": {
        "url": "https://svc.example.com/notes",
        "method": "POST",
        "request_body_schema": {
            "type": "object",
            "required": ["note"],
            "properties": {"note": {"type": "string", "description": "the note"}},
        },
    },
}


class WebhookReceiver:
    """A tiny HTTP server in a thread that records every POST (headers + raw body)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answered in order; 200 once exhausted
        self.url = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def hook(path: str, request: Request) -> Response:
            raw = await request.body()
            self.received.append(
                {"path": "/" + path, "headers": dict(request.headers), "raw": raw, "json": json.loads(raw)}
            )
            status = self.statuses.pop(0) if self.statuses else 200
            return Response(status_code=status)

        return app

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["json"]["type"] == kind]

    def for_conversation(self, conversation_id: str) -> list[dict[str, Any]]:
        return [r for r in self.received if r["json"]["data"]["conversation_id"] == conversation_id]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    rec = WebhookReceiver()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(rec.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "webhook receiver did not start"
        time.sleep(0.01)
    rec.url = f"http://127.0.0.1:{port}/hooks/elevenlabs"
    try:
        yield rec
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
async def call_app() -> AsyncIterator[FastAPI]:
    app = create_app(SimSettings(api_key=API_KEY, seed=7, ring_ms=20, call_duration_ms=60, processing_ms=10))
    yield app
    await lifecycle.shutdown(app.state.sim)


@pytest.fixture
async def calls_client(call_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=call_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", headers={"xi-api-key": API_KEY}
    ) as c:
        yield c


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.01)


def verify_signature(header: str, raw: bytes, secret: str) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(parts["v0"], expected)
