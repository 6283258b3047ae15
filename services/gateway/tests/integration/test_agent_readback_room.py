"""An agent whose texts fit the bus but leave no room for the agent ElevenLabs reads back is a 413
before anything is queued: found by hand, a 995,000-character system_prompt created the agent
upstream, then its agent.created event was dead-lettered as too large and the client got a 500."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app
from gateway.bootstrap import Container

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
