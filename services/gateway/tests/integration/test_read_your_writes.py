"""Read-your-writes: once the projector completes a write's operation, every read model the write
touches answers it (issue 10 §6). Here the moment of completion is held still: only the concluding
event is projected, so whatever comes later on the bus cannot make the reads pass."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from contracts.campaigns import (
    CampaignRecipientsClosed,
    CampaignSnapshot,
    CampaignUpdated,
    ClosedRecipient,
)
from contracts.telephony import CallPlaced, CustomerInfo, CustomerSessionStored
from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.models import CampaignRecipient, Operation

from .conftest import API_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(container)  # lifespan not run: only the request path is exercised
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}
    ) as c:
        yield c


async def _pending(container: Container, command_type: str) -> str:
    op_id = uuid.uuid4().hex
    async with container.engine.begin() as connection:
        await connection.execute(
            insert(Operation), [{"operation_id": op_id, "command_type": command_type, "status": "pending"}]
        )
    return op_id


def _placed(op_id: str, provider: str, customer_info: CustomerInfo | None) -> CallPlaced:
    conversation_id = f"conv_{uuid.uuid4().hex}"
    return CallPlaced(
        causation_id=op_id,
        conversation_id=conversation_id,
        provider=provider,  # type: ignore[arg-type]
        call_sid="CA" + "0" * 32 if provider == "twilio" else None,
        sip_call_id=None if provider == "twilio" else "sip-1",
        agent_id="agent_1",
        phone_number_id="phnum_1",
        to_number="+14155550123",
        sender_email="support@acmecorp.com",
        customer_info=customer_info,
        placed_at_unix=1_780_000_000,
    )


@pytest.mark.parametrize("provider", ["twilio", "sip_trunk"])
@pytest.mark.parametrize(
    "info",
    [{"name": "John Doe", "email": "john@example.com"}, {"phone": "+14155550199"}],
    ids=["name-and-email", "phone-only"],
)
async def test_a_placed_call_answers_with_its_call_and_customer_session_readable(
    container: Container, api: httpx.AsyncClient, provider: str, info: dict[str, Any]
) -> None:
    op_id = await _pending(container, "call.place")
    placed = _placed(op_id, provider, CustomerInfo(**info))
    await container.projection.project(placed)

    outcome = await container.service.operation_outcome(op_id)
    assert outcome is not None and outcome.status_code == 200, outcome
    cid = placed.conversation_id
    call = await api.get(f"/api/v1/calls/{cid}")
    assert call.status_code == 200 and call.json()["status"] == "dialing", call.text
    session = await api.get(f"/api/v1/email-templates/sessions/{cid}")
    assert session.status_code == 200, session.text
    assert session.json()["customer_info"] == info

    # The session's own event, projected later, changes nothing a reader sees.
    await container.projection.project(
        CustomerSessionStored(
            causation_id=op_id,
            conversation_id=cid,
            customer_info=CustomerInfo(**info),
            sender_email="support@acmecorp.com",
        )
    )
    assert (await api.get(f"/api/v1/email-templates/sessions/{cid}")).json()["customer_info"] == info


async def test_a_call_without_customer_info_has_no_session(
    container: Container, api: httpx.AsyncClient
) -> None:
    op_id = await _pending(container, "call.place")
    placed = _placed(op_id, "twilio", None)
    await container.projection.project(placed)
    assert (await container.service.operation_outcome(op_id)) is not None
    assert (await api.get(f"/api/v1/calls/{placed.conversation_id}")).status_code == 200
    assert (await api.get(f"/api/v1/email-templates/sessions/{placed.conversation_id}")).status_code == 404


@pytest.mark.parametrize("command_type", ["campaign.submit", "campaign.cancel"])
async def test_a_campaign_write_answers_with_the_campaign_and_its_recipients_readable(
    container: Container, api: httpx.AsyncClient, command_type: str
) -> None:
    """The submission staged its recipients (scheduled); a cancel closes the waiting ones in the
    transaction that answers it and announces them first (`campaign.recipients_closed`, which
    answers nothing), so its caller never sees a cancelled campaign with live recipients."""
    campaign_id = f"batch_{uuid.uuid4().hex}"
    async with container.engine.begin() as connection:
        await connection.execute(
            insert(CampaignRecipient),
            [
                {
                    "campaign_id": campaign_id,
                    "recipient_id": f"r{i}",
                    "position": i,
                    "to_number": f"+1415555012{i}",
                    "status": "scheduled",
                    "retry_count": 0,
                }
                for i in range(3)
            ],
        )
    op_id = await _pending(container, command_type)
    status = "pending" if command_type == "campaign.submit" else "cancelled"
    snapshot = CampaignSnapshot(
        campaign_id=campaign_id,
        name="Reminders",
        agent_id="agent_1",
        phone_number_id="phnum_1",
        phone_provider="twilio",
        status=status,
        created_at_unix=1_780_000_000,
        retry_count=0,
        total_calls_scheduled=3,
        total_calls_dispatched=0,
        total_calls_finished=0,
        last_updated_at_unix=1_780_000_000,
    )
    if command_type == "campaign.cancel":
        closed = CampaignRecipientsClosed(
            causation_id=op_id,
            campaign_id=campaign_id,
            status="cancelled",
            reason="Campaign cancelled",
            part_index=0,
            part_count=1,
            recipients=[
                ClosedRecipient(recipient_id=f"r{i}", position=i, to_number=f"+1415555012{i}")
                for i in range(3)
            ],
        )
        await container.projection.project(closed)
        assert await container.service.operation_outcome(op_id) is None
    await container.projection.project(CampaignUpdated(causation_id=op_id, campaign=snapshot))

    outcome = await container.service.operation_outcome(op_id)
    assert outcome is not None and outcome.status_code == 200, outcome
    job = await api.get(f"/api/v1/batch-calling/{campaign_id}")
    assert job.status_code == 200 and job.json()["status"] == status, job.text
    calls = (await api.get(f"/api/v1/batch-calling/{campaign_id}/calls")).json()["calls"]
    assert [c["status"] for c in calls] == ["scheduled" if status == "pending" else "cancelled"] * 3
