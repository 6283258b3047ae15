"""Scheduler rules against the real database: calling windows defer, silent attempts time out,
unknown or superseded telephony events are ignored."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import structlog
from sqlalchemy import select

from campaigns import domain, outcomes
from campaigns.bootstrap import make_deps
from campaigns.models import Attempt, Recipient
from campaigns.scheduling import Scheduler
from campaigns.uow import UnitOfWork
from contracts.campaigns import (
    AddCampaignRecipients,
    CallingWindow,
    CampaignRecipient,
    CancelCampaign,
    SubmitCampaign,
)
from contracts.telephony import CallStatusChanged

from .conftest import DEADLINE_S, Harness, new_number

pytestmark = pytest.mark.integration


def _submit(harness: Harness, numbers: list[str], **fields: object) -> SubmitCampaign:
    values: dict[str, object] = {
        "campaign_id": f"batch_{uuid.uuid4().hex[:12]}",
        "call_name": "Test campaign",
        "agent_id": harness.agent_id,
        "phone_number_id": harness.phone_number_id,
        "phone_provider": "twilio",
        "recipients": [CampaignRecipient(phone_number=n) for n in numbers],
    } | fields
    return SubmitCampaign.model_validate(values)


async def _recipients(harness: Harness, campaign_id: str) -> list[Recipient]:
    async with harness.container.sessionmaker() as session:
        result = await session.scalars(
            select(Recipient).where(Recipient.campaign_id == campaign_id).order_by(Recipient.position)
        )
        return list(result.all())


async def test_closed_calling_window_defers_to_the_next_local_opening(harness: Harness) -> None:
    local = datetime.now(UTC).astimezone(ZoneInfo("America/Los_Angeles"))
    start = (local + timedelta(hours=2)).strftime("%H:%M")
    end = (local + timedelta(hours=3)).strftime("%H:%M")
    window = CallingWindow(start=start, end=end)
    numbers = [new_number("1"), new_number("2")]  # San Francisco numbers
    command = _submit(harness, numbers, calling_window=window)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "running")
    deadline = time.monotonic() + DEADLINE_S
    while any(r.next_attempt_at is None for r in await _recipients(harness, command.campaign_id)):
        assert time.monotonic() < deadline, "recipients never deferred"
        await asyncio.sleep(0.05)  # polling with a deadline
    rows = await _recipients(harness, command.campaign_id)
    expected = domain.next_dial_time(datetime.now(UTC), window, "America/Los_Angeles")
    assert expected is not None
    for row in rows:
        assert row.status == "scheduled" and row.time_zones == ["America/Los_Angeles"]
        assert row.next_attempt_at is not None
        assert abs((row.next_attempt_at - expected).total_seconds()) < 120
    assert (await harness.stats())["total_dials"] == 0
    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    cancelled = await harness.wait_status(command.campaign_id, "cancelled")
    assert cancelled["total_calls_finished"] == 2


@pytest.mark.parametrize("retry_count", [0, 2])
async def test_an_attempt_without_outcome_times_out_and_is_never_redialled(
    harness: Harness, retry_count: int
) -> None:
    # Even with retries left: an attempt with no outcome may have rung the person, so it is not a
    # failure to retry as a new attempt.
    await harness.configure(call_duration_ms=20_000)
    number = new_number("1")
    command = _submit(harness, [number], retry_count=retry_count)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_for(
        type="campaign.recipient_updated",
        campaign_id=command.campaign_id,
        status="in_progress",
        what="call in progress",
    )
    box = harness.container
    impatient = Scheduler(
        make_deps(
            box.settings.model_copy(update={"attempt_timeout_s": 0.5}),
            lambda: UnitOfWork(box.sessionmaker, box.bus),
        )
    )
    await impatient.tick(now=datetime.now(UTC) + timedelta(seconds=0.6))  # past its 0.5 s timeout
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 1
    rows = await _recipients(harness, command.campaign_id)
    assert rows[0].status == "failed" and rows[0].reason == "no outcome"
    assert (await harness.stats())["dials_by_number"][number] == 1
    # The late outcome of that attempt is ignored.
    async with box.sessionmaker() as session:
        attempt = await session.scalar(select(Attempt).where(Attempt.campaign_id == command.campaign_id))
    assert attempt is not None and attempt.conversation_id
    await outcomes.call_status_changed(
        box.deps,
        CallStatusChanged(
            conversation_id=attempt.conversation_id,
            status="completed",
            campaign_id=command.campaign_id,
            recipient_id="r0",
            attempt=1,
        ),
    )
    assert (await _recipients(harness, command.campaign_id))[0].status == "failed"


async def test_events_for_unknown_attempts_are_ignored(harness: Harness) -> None:
    # A recipient with a call in flight (attempt 1); then outcomes that look like it but are not
    # its attempt: another campaign's, a later attempt's, and a call placed outside any campaign.
    await harness.configure(call_duration_ms=20_000)
    command = _submit(harness, [new_number("1")], retry_count=2)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_for(
        type="campaign.recipient_updated",
        campaign_id=command.campaign_id,
        status="in_progress",
        what="call in progress",
    )
    strangers = [
        CallStatusChanged(
            conversation_id="conv_x", status="completed", campaign_id=campaign_id, recipient_id=rid, attempt=n
        )
        for campaign_id, rid, n in (
            ("no-such-campaign", "r0", 1),
            (command.campaign_id, "r0", 2),
            (None, None, None),
        )
    ]
    with structlog.testing.capture_logs() as logs:
        for event in strangers:
            await outcomes.call_status_changed(harness.container.deps, event)

    unknown = [
        line
        for line in logs
        if line["event"] == "campaigns.event.unknown_attempt"
        and line["campaign_id"] in ("no-such-campaign", command.campaign_id)  # not other tests' calls
    ]
    assert [(line["campaign_id"], line["attempt"]) for line in unknown] == [
        ("no-such-campaign", 1),
        (command.campaign_id, 2),
    ]
    (recipient,) = await _recipients(harness, command.campaign_id)
    assert (recipient.status, recipient.attempts) == ("in_progress", 1)
    async with harness.container.sessionmaker() as session:
        attempts = (
            await session.scalars(select(Attempt).where(Attempt.campaign_id == command.campaign_id))
        ).all()
    assert [(a.attempt, a.status) for a in attempts] == [(1, "in_progress")]
    campaign = await harness.campaign_row(command.campaign_id)
    assert (campaign.status, campaign.in_flight, campaign.total_finished) == ("running", 1, 0)
    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "cancelled")


async def test_large_chunked_campaign_counters_and_bulk_cancel(harness: Harness) -> None:
    per_chunk = 1000
    numbers = [f"+1415{2 + i % 8}{i:05d}1" for i in range(3 * per_chunk)]
    command = _submit(
        harness, numbers[:per_chunk], recipient_chunks=3, scheduled_time_unix=int(time.time()) + 3600
    )
    await harness.publish(command, key=command.campaign_id)
    for index in (1, 2):
        chunk = numbers[index * per_chunk : (index + 1) * per_chunk]
        await harness.publish(
            AddCampaignRecipients(
                campaign_id=command.campaign_id,
                chunk_index=index,
                recipients=[CampaignRecipient(phone_number=n) for n in chunk],
            ),
            key=command.campaign_id,
        )
    ready = await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.updated"
            and e["campaign"]["campaign_id"] == command.campaign_id
            and e["campaign"]["total_calls_scheduled"] == 3 * per_chunk
        ),
        what="all chunks counted",
    )
    assert ready["campaign"]["status"] == "pending" and ready["campaign"]["total_calls_finished"] == 0
    # no per-recipient events for the initial scheduled state
    assert not harness.recipient_events(command.campaign_id)
    rows = await _recipients(harness, command.campaign_id)
    assert [r.position for r in rows] == list(range(3 * per_chunk))
    assert (
        rows[per_chunk].recipient_id == f"r{per_chunk}" and rows[per_chunk].phone_number == numbers[per_chunk]
    )
    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    cancelled = await harness.wait_status(command.campaign_id, "cancelled")
    assert cancelled["total_calls_finished"] == 3 * per_chunk and cancelled["total_calls_dispatched"] == 0
    assert (await harness.stats())["total_dials"] == 0
