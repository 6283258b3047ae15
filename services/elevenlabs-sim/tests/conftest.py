from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from elevenlabs_sim import SimSettings, create_app

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
