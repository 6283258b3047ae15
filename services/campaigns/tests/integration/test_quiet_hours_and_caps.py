"""Platform quiet hours and frequency caps in the scheduler: a recipient held back waits (never
dropped) with `waiting_reason`, and is dialled when the rule allows. Each test drives its own
scheduler on a clock days ahead with the shipped quiet-hours rules; the session's real-time
scheduler never meets these campaigns open (calling window only on those days). Real broker,
database, telephony and simulator."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from campaigns.bootstrap import make_deps
from campaigns.scheduling import Scheduler
from campaigns.uow import UnitOfWork
from contracts.calling import read_number
from contracts.campaigns import (
    AddDoNotCall,
    CallingWindow,
    CampaignRecipient,
    RetryDelays,
    SubmitCampaign,
)

from .conftest import Harness

pytestmark = pytest.mark.integration

LONDON = "Europe/London"


def _london_number(last_digit: str) -> str:
    """A fresh valid London number (+44 20 7xxx xxxx); the last digit picks the simulated outcome."""
    number = f"+44207{uuid.uuid4().int % 10**6:06d}{last_digit}"
    assert not isinstance(read_number(number), str), number
    return number


def _at(day: date, hhmm: time) -> datetime:
    return datetime.combine(day, hhmm, tzinfo=ZoneInfo(LONDON)).astimezone(UTC)


def _clocked(harness: Harness, **settings: Any) -> Scheduler:
    """A scheduler on an injected clock with the shipped quiet-hours rules (QUIET_HOURS_FILE unset)."""
    box = harness.container
    return Scheduler(
        make_deps(
            box.settings.model_copy(
                update={"attempt_timeout_s": 10**9, "quiet_hours_file": None, **settings}
            ),
            lambda: UnitOfWork(box.sessionmaker, box.bus),
        )
    )


def _submit(harness: Harness, numbers: list[str], day: date, **fields: Any) -> SubmitCampaign:
    # Open all day, but only from `day` on (three days ahead): the real-time scheduler never dials it.
    days = sorted({day.weekday(), (day + timedelta(days=1)).weekday()})
    return SubmitCampaign(
        campaign_id=f"batch_{uuid.uuid4().hex[:12]}",
        call_name="Quiet hours",
        agent_id=harness.agent_id,
        phone_number_id=harness.phone_number_id,
        phone_provider="twilio",
        recipients=[CampaignRecipient(phone_number=n) for n in numbers],
        calling_window=CallingWindow(start="00:00", end="00:00", days=days),
        scheduled_time_unix=int(_at(day, time(0, 30)).timestamp()),
        correlation_id=uuid.uuid4().hex,
        **fields,
    )


async def _stored(harness: Harness, campaign_id: str) -> None:
    await harness.wait_for(
        lambda e: e.get("type") == "campaign.updated" and e["campaign"]["campaign_id"] == campaign_id,
        what="campaign stored",
    )


async def _event(harness: Harness, campaign_id: str, what: str, **expected: Any) -> dict[str, Any]:
    return await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == campaign_id
            and all(e.get(k) == v for k, v in expected.items())
        ),
        what=what,
    )


async def _dials(harness: Harness, number: str) -> int:
    return int((await harness.stats())["dials_by_number"].get(number, 0))


async def test_a_recipient_waits_for_eight_local_then_is_called(harness: Harness) -> None:
    day = datetime.now(UTC).date() + timedelta(days=3)
    number = _london_number("1")
    command = _submit(harness, [number], day)
    await harness.publish(command, key=command.campaign_id)
    await _stored(harness, command.campaign_id)
    clocked = _clocked(harness)

    # 06:00 in London: the campaign's window is open, the platform's quiet hours are not.
    await clocked.tick(_at(day, time(6)))
    held = await _event(harness, command.campaign_id, "held by quiet hours", waiting_reason="quiet_hours")
    assert held["status"] == "scheduled"
    assert held["next_attempt_at_unix"] == int(_at(day, time(8)).timestamp())
    await clocked.tick(_at(day, time(7, 59)))
    assert await _dials(harness, number) == 0

    await clocked.tick(_at(day, time(8)))
    await harness.wait_status(command.campaign_id, "completed")
    assert await _dials(harness, number) == 1
    dialled = await _event(harness, command.campaign_id, "dialled", status="dialing")
    assert dialled["waiting_reason"] is None


async def test_the_platform_cap_holds_a_number_for_the_rest_of_the_day(harness: Harness) -> None:
    day = datetime.now(UTC).date() + timedelta(days=3)
    number = _london_number("6")  # never answers: retried at once (delays scaled to ~0)
    command = _submit(harness, [number], day, retry_count=3, retry_delays=RetryDelays(no_answer=0))
    await harness.publish(command, key=command.campaign_id)
    await _stored(harness, command.campaign_id)
    clocked = _clocked(harness, max_attempts_per_number_24h=2)
    noon = _at(day, time(12))

    for n in range(2):
        await clocked.tick(noon + timedelta(minutes=n))
        await _event(
            harness, command.campaign_id, f"retry {n + 1} waiting", status="scheduled", retry_count=n + 1
        )
    await clocked.tick(noon + timedelta(minutes=2))
    held = await _event(harness, command.campaign_id, "held by the cap", waiting_reason="frequency_cap")
    # The first dial leaves the rolling day at noon tomorrow.
    assert held["next_attempt_at_unix"] == int((noon + timedelta(days=1)).timestamp())
    assert await _dials(harness, number) == 2

    await clocked.tick(noon + timedelta(days=1))
    await _event(harness, command.campaign_id, "third dial", status="scheduled", retry_count=3)
    assert await _dials(harness, number) == 3


async def test_the_campaign_cap_narrows_the_platforms(harness: Harness) -> None:
    day = datetime.now(UTC).date() + timedelta(days=3)
    number = _london_number("6")
    command = _submit(
        harness,
        [number],
        day,
        retry_count=2,
        retry_delays=RetryDelays(no_answer=0),
        max_daily_attempts_per_number=1,
    )
    await harness.publish(command, key=command.campaign_id)
    await _stored(harness, command.campaign_id)
    clocked = _clocked(harness)
    noon = _at(day, time(12))

    await clocked.tick(noon)
    await _event(harness, command.campaign_id, "first retry waiting", status="scheduled", retry_count=1)
    await clocked.tick(noon + timedelta(minutes=1))
    held = await _event(harness, command.campaign_id, "held by its cap", waiting_reason="campaign_daily_cap")
    assert held["next_attempt_at_unix"] == int((noon + timedelta(days=1)).timestamp())
    assert await _dials(harness, number) == 1


async def test_a_round_reads_its_recipients_do_not_call_and_every_campaigns_dials_at_once(
    harness: Harness,
) -> None:
    """One statement gives a dispatch round its due recipients, whether each number is on the
    do-not-call list, and each number's dials in every campaign (the platform cap counts them)."""
    day = datetime.now(UTC).date() + timedelta(days=3)
    dialled_elsewhere, listed, fresh = (_london_number("1") for _ in range(3))
    await harness.publish(AddDoNotCall(phone_number=listed, source="api"), key=listed)
    await harness.wait_for(
        lambda e: e.get("type") == "do_not_call.added" and e["phone_number"] == listed, what="listed"
    )
    noon = _at(day, time(12))
    first = _submit(harness, [dialled_elsewhere], day)
    second = _submit(harness, [dialled_elsewhere, listed, fresh], day).model_copy(
        update={"scheduled_time_unix": int(noon.timestamp()) + 60}
    )
    for command in (first, second):
        await harness.publish(command, key=command.campaign_id)
        await _stored(harness, command.campaign_id)
    clocked = _clocked(harness, max_attempts_per_number_24h=1)
    await clocked.tick(noon)  # the first campaign dials the number the second has too
    await harness.wait_status(first.campaign_id, "completed")

    in_round: contextvars.ContextVar[bool] = contextvars.ContextVar("in_round", default=False)
    reads: list[str] = []
    built: set[int] = set()

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, *args: Any) -> None:
        if in_round.get() and "do_not_call" in statement:
            reads.append(statement)
            built.add(id(context.invoked_statement))

    async def tick() -> None:
        in_round.set(True)  # this task's context, which SQLAlchemy's greenlets run in
        await clocked.tick(noon + timedelta(minutes=1))

    engine = harness.container.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await asyncio.create_task(tick())
    finally:
        event.remove(engine, "before_cursor_execute", count)

    # Every round (one more after a recipient was held or skipped) read all three at once, with
    # one statement built once (building it was ~0.3 ms of CPU a round).
    assert len(reads) >= 2 and len(built) == 1, (len(reads), built)
    for read in reads:
        assert "campaigns.attempts" in read and "FOR UPDATE OF recipients" in read, read
    skipped = await _event(harness, second.campaign_id, "listed number skipped", status="skipped_dnc")
    assert skipped["to_number"] == listed
    held = await _event(harness, second.campaign_id, "held by the cap", waiting_reason="frequency_cap")
    assert held["to_number"] == dialled_elsewhere
    assert held["next_attempt_at_unix"] == int((noon + timedelta(days=1)).timestamp())
    dialled = await _event(harness, second.campaign_id, "fresh number dialled", status="dialing")
    assert dialled["to_number"] == fresh
