"""An agent or a number that a campaign not yet final uses cannot be deleted (409 naming the
campaigns); once the campaign is final it can.

Found by a fresh user's trial: deleting the agent of a running campaign was accepted, its remaining
recipients all failed "404 Not found" and the campaign read as completed. Campaigns are projected
from their events (real projection, real PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from contracts.campaigns import CallerIdStats, CampaignSnapshot, CampaignUpdated
from gateway.app import create_app
from gateway.bootstrap import Container

from .conftest import API_KEY, seed_agent_and_number

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}, timeout=60
    ) as client:
        yield client


async def _campaign(container: Container, status: str, agent: str, main: str, pool: list[str]) -> str:
    campaign_id = f"batch_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    snapshot = CampaignSnapshot(
        campaign_id=campaign_id,
        name="in use",
        agent_id=agent,
        phone_number_id=main,
        status=status,  # type: ignore[arg-type]
        created_at_unix=int(now.timestamp()),
        retry_count=0,
        total_calls_scheduled=3,
        total_calls_dispatched=1,
        total_calls_finished=0,
        last_updated_at_unix=int(now.timestamp()),
        phone_numbers=[
            CallerIdStats(phone_number_id=p, dials=0, answered=0, answer_rate=None) for p in [main, *pool]
        ],
    )
    await container.projection.project(CampaignUpdated(campaign=snapshot, occurred_at=now))
    return campaign_id


@pytest.mark.parametrize("status", ["pending", "running", "paused"])
async def test_the_agent_and_numbers_of_an_active_campaign_are_not_deleted(
    api: httpx.AsyncClient, container: Container, status: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    agent, main, pooled = f"agent_{tag}", f"pn_main_{tag}", f"pn_pool_{tag}"
    for number in (main, pooled):
        await seed_agent_and_number(
            container, agent_id=agent, name="A", first_message="Hi", phone_number_id=number, label=number
        )
    campaign_id = await _campaign(container, status, agent, main, [pooled])
    for path, what in (
        (f"/api/v1/agents/{agent}", "agent"),
        (f"/api/v1/phone-numbers/{main}", "phone number"),
        (f"/api/v1/phone-numbers/{pooled}", "phone number"),
    ):
        response = await api.delete(path)
        assert response.status_code == 409, response.text
        answer = response.json()
        assert answer["success"] is False and answer["error"] == f"The {what} is used by an active campaign"
        assert campaign_id in answer["detail"] and "cancel" in answer["detail"]


@pytest.mark.parametrize("status", ["completed", "cancelled", "failed"])
async def test_a_final_campaign_does_not_hold_its_agent_or_numbers(container: Container, status: str) -> None:
    tag = uuid.uuid4().hex[:8]
    agent, main, pooled = f"agent_{tag}", f"pn_main_{tag}", f"pn_pool_{tag}"
    await _campaign(container, status, agent, main, [pooled])
    service = container.service
    assert await service.active_campaigns_using(agent_id=agent) == []
    assert await service.active_campaigns_using(phone_number_id=main) == []
    assert await service.active_campaigns_using(phone_number_id=pooled) == []
    # and another campaign's agent or number is not held by this one
    other = await _campaign(container, "running", f"other_{tag}", f"pn_other_{tag}", [])
    assert await service.active_campaigns_using(agent_id=agent) == []
    assert await service.active_campaigns_using(agent_id=f"other_{tag}") == [other]
