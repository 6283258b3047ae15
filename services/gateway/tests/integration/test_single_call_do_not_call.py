"""A single call to a number on the do-not-call list is refused before anything is dialled.

Found by a fresh user's trial: after a callee opted out by voice (and heard "this number will not be
called again"), a single call to the number was placed. Real request path, real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.models import DoNotCall, outbox

from .conftest import API_KEY, seed_agent_and_number

pytestmark = pytest.mark.integration

AGENT = "agent_dnc_single"
PHONE = "pn_dnc_single"
BY_VOICE = "+14155550177"
BY_API = "+442079460177"


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    await seed_agent_and_number(
        container, agent_id=AGENT, name="Dnc", first_message="Hello", phone_number_id=PHONE, label="dnc"
    )
    now = datetime.now(UTC)
    async with container.engine.begin() as connection:
        for number, source, conversation in ((BY_VOICE, "voice", "conv_optout"), (BY_API, "api", None)):
            await connection.execute(
                insert(DoNotCall)
                .values(
                    phone_number=number,
                    reason="asked",
                    added_at_unix=0,
                    source=source,
                    conversation_id=conversation,
                    last_event_at=now,
                )
                .on_conflict_do_nothing()
            )
        await connection.execute(delete(outbox))
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}, timeout=60
    ) as client:
        yield client


@pytest.mark.parametrize(("number", "said"), [(BY_VOICE, "opted out by voice in conv_optout"), (BY_API, "")])
async def test_a_single_call_to_a_listed_number_is_refused_and_nothing_is_dialled(
    api: httpx.AsyncClient, container: Container, number: str, said: str
) -> None:
    body = {
        "agent_id": AGENT,
        "agent_phone_number_id": PHONE,
        "to_number": number,
        "override_quiet_hours": True,
    }
    response = await api.post("/api/v1/phone-numbers/twilio/outbound-call", json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"] == "On the do-not-call list"
    assert number in answer["detail"] and said in answer["detail"]
    assert f"DELETE /api/v1/do-not-call/{number}" in answer["detail"]
    async with container.engine.connect() as connection:
        assert (await connection.execute(select(func.count()).select_from(outbox))).scalar_one() == 0
