"""Caller-ID pools (area code first, rotation, per-number daily caps, per-number results) and the
budget guard of call minutes; real broker, database, telephony and simulator."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from campaigns import outcomes
from campaigns.models import Attempt
from contracts.campaigns import CampaignRecipient, SubmitCampaign
from contracts.telephony import PhoneNumberImported, PhoneNumberRecord
from devinfra.numbers import outcome_number

from .conftest import Harness, new_number

pytestmark = pytest.mark.integration


async def _caller_id(harness: Harness, e164: str) -> str:
    """A number imported at the simulator, and known to the campaigns service as telephony's
    `phone_number.imported` event would make it known."""
    phone_number_id = await harness.telephony.elevenlabs.create_phone_number(
        {"provider": "twilio", "phone_number": e164, "label": e164, "sid": "AC1", "token": "t"}
    )
    record = PhoneNumberRecord(
        phone_number_id=phone_number_id,
        phone_number=e164,
        label=e164,
        provider="twilio",
        created_at_unix=int(time.time()),
    )
    await outcomes.phone_number_changed(harness.container.deps, PhoneNumberImported(phone=record))
    return phone_number_id


def _nyc(last_digit: str) -> str:
    return outcome_number(last_digit, prefix="+1212")


def _submit(harness: Harness, numbers: list[str], **fields: Any) -> SubmitCampaign:
    return SubmitCampaign(
        campaign_id=f"batch_{uuid.uuid4().hex[:12]}",
        call_name="Pools",
        agent_id=harness.agent_id,
        phone_provider="twilio",
        recipients=[CampaignRecipient(phone_number=n) for n in numbers],
        correlation_id=uuid.uuid4().hex,
        **{"phone_number_id": harness.phone_number_id} | fields,
    )


async def _callers(harness: Harness, campaign_id: str) -> dict[str, str | None]:
    """to_number -> the caller ID its first attempt was dialled from."""
    async with harness.container.sessionmaker() as session:
        rows = await session.execute(
            select(Attempt.to_number, Attempt.phone_number_id).where(Attempt.campaign_id == campaign_id)
        )
        return {str(to): caller for to, caller in rows.all()}


async def test_a_pool_dials_from_the_recipients_area_code_and_reports_each_number(harness: Harness) -> None:
    sf_caller = await _caller_id(harness, new_number("0"))
    ny_caller = await _caller_id(harness, _nyc("0"))
    sf = [new_number("1"), new_number("1")]
    ny = [_nyc("1"), _nyc("6")]  # one answers, one never does
    command = _submit(harness, [*sf, *ny], phone_number_id=ny_caller, phone_number_ids=[sf_caller])
    await harness.publish(command, key=command.campaign_id)
    done = await harness.wait_status(command.campaign_id, "completed")

    callers = await _callers(harness, command.campaign_id)
    assert {callers[n] for n in sf} == {sf_caller} and {callers[n] for n in ny} == {ny_caller}
    assert done["phone_numbers"] == [
        {"phone_number_id": ny_caller, "dials": 2, "answered": 1, "answer_rate": 0.5, "daily_cap": None},
        {"phone_number_id": sf_caller, "dials": 2, "answered": 2, "answer_rate": 1.0, "daily_cap": None},
    ]


async def test_equal_numbers_rotate_and_a_capped_pool_holds_recipients(harness: Harness) -> None:
    first, second = await _caller_id(harness, _nyc("0")), await _caller_id(harness, _nyc("0"))
    numbers = [new_number("1") for _ in range(3)]  # San Francisco: neither caller is local
    command = _submit(
        harness,
        numbers,
        phone_number_id=first,
        phone_number_ids=[second],
        phone_number_daily_caps={first: 1, second: 1},
        concurrency_limit=1,
    )
    await harness.publish(command, key=command.campaign_id)
    held = await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == command.campaign_id
            and e.get("waiting_reason") == "caller_id_cap"
        ),
        what="third recipient held by the pool's caps",
    )
    assert held["status"] == "scheduled" and held["to_number"] == numbers[2]
    # Both numbers dialled once today: the first may dial again a day after its dial.
    assert time.time() + 23.9 * 3600 < held["next_attempt_at_unix"] <= time.time() + 24 * 3600
    callers = await _callers(harness, command.campaign_id)
    assert sorted(callers.values()) == sorted([first, second])
    stats = await harness.stats()
    assert numbers[2] not in stats["dials_by_number"]


async def test_the_budget_pauses_the_campaign_before_the_next_call_could_exceed_it(harness: Harness) -> None:
    # Calls of ~2 s; each call is reserved CAMPAIGNS_BUDGET_CALL_ESTIMATE_S (60 s): one minute of
    # budget allows the first dial (0 + 60 s), not a second after 2 s were used (2 + 60 s).
    await harness.configure(call_duration_ms=1600)
    numbers = [new_number("1") for _ in range(3)]
    command = _submit(harness, numbers, max_total_minutes=1.0, concurrency_limit=1)
    await harness.publish(command, key=command.campaign_id)
    paused = await harness.wait_status(command.campaign_id, "paused")
    assert paused["status_reason"].startswith("Budget:") and "max_total_minutes 1" in paused["status_reason"]
    assert paused["max_total_minutes"] == 1.0 and paused["call_minutes_used"] > 0
    dials = (await harness.stats())["dials_by_number"]
    assert dials.get(numbers[0]) == 1 and numbers[1] not in dials and numbers[2] not in dials
