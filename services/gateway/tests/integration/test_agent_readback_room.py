"""An agent whose texts fit the bus but leave no room for the agent ElevenLabs reads back is a 413
before anything is queued: found by hand, a 995,000-character system_prompt created the agent
upstream, then its agent.created event was dead-lettered as too large and the client got a 500."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.models import Agent

from .conftest import API_KEY

pytestmark = pytest.mark.integration


async def _create(container: Container, prompt_chars: int) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post(
            "/api/v1/agents",
            json={"name": "Big", "first_message": "Hi", "system_prompt": "x" * prompt_chars},
            headers={"X-API-Key": API_KEY},
        )


@pytest.mark.parametrize("prompt_chars", [995_000, 960_000])
async def test_a_prompt_leaving_no_room_for_the_read_back_agent_is_413(
    container: Container, prompt_chars: int
) -> None:
    assert container.settings.bus_max_message_bytes == 1_000_000  # the command alone would fit
    response = await _create(container, prompt_chars)
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "Payload too large"
    assert "BUS_MAX_MESSAGE_BYTES" in body["detail"]


async def test_a_long_prompt_with_room_to_spare_is_queued(container: Container) -> None:
    response = await _create(container, 900_000)
    assert response.status_code in (200, 202), response.text  # no service answers here: 202


async def _agent_with_prompt(container: Container, prompt_chars: int) -> str:
    """An agent already in the read model, as provisioning projected it (ElevenLabs' read-back)."""
    agent_id = f"agent_{uuid.uuid4().hex[:20]}"
    async with AsyncSession(container.engine) as session, session.begin():
        session.add(
            Agent(
                agent_id=agent_id,
                name="Large",
                conversation_config={
                    "agent": {"first_message": "Hi", "prompt": {"prompt": "p" * prompt_chars}}
                },
                platform_settings={},
                tags=["switchboard"],
                created_at_unix=0,
                last_event_at=datetime.now(UTC),
            )
        )
    return agent_id


async def _patch(container: Container, path: str, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.patch(path, json=body, headers={"X-API-Key": API_KEY})


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("", {"conversation_config": {"agent": {"first_message": "f" * 450_000}}}),
        ("/prompt", {"first_message": "f" * 450_000}),
    ],
)
async def test_an_update_whose_merged_agent_cannot_travel_is_413(
    container: Container, suffix: str, body: dict[str, Any]
) -> None:
    """Found by hand: each part fits, the agent ElevenLabs merges them into does not. The update
    was applied upstream, its agent.updated event refused, and the read model kept the old agent."""
    agent_id = await _agent_with_prompt(container, 600_000)
    response = await _patch(container, f"/api/v1/agents/{agent_id}{suffix}", body)
    assert response.status_code == 413, response.text
    assert "after this change" in response.json()["detail"]


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("", {"name": "Renamed"}),
        ("/prompt", {"system_prompt": "q" * 600_000}),  # replaces the prompt: the agent stays the size
        ("", {"conversation_config": {"agent": {"prompt": {"prompt": "short"}}}}),
    ],
)
async def test_an_update_of_a_large_agent_that_still_fits_is_queued(
    container: Container, suffix: str, body: dict[str, Any]
) -> None:
    agent_id = await _agent_with_prompt(container, 600_000)
    response = await _patch(container, f"/api/v1/agents/{agent_id}{suffix}", body)
    assert response.status_code in (200, 202), response.text
