"""Local time of numbers whose region spans zones (clock injected into the scheduler), refused
time zones, and one call per number across chunks and Kafka producers; real broker, database,
telephony and simulator."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from campaigns.bootstrap import make_deps
from campaigns.models import Campaign, Recipient
from campaigns.scheduling import Scheduler
from campaigns.uow import UnitOfWork
from contracts.campaigns import (
    AddCampaignRecipients,
    CallingWindow,
    CampaignRecipient,
    CancelCampaign,
    SubmitCampaign,
)

from .conftest import Harness

pytestmark = pytest.mark.integration


def _australian(prefix: str) -> str:
    """A fresh valid number: +61 8 9xxx (Perth), +61 2 9xxx (Sydney); last digit 1 = answered."""
    return f"{prefix}{uuid.uuid4().int % 10**4:04d}1"


def _submit(harness: Harness, recipients: list[CampaignRecipient], **fields: Any) -> SubmitCampaign:
    return SubmitCampaign(
        campaign_id=f"batch_{uuid.uuid4().hex[:12]}",
        call_name="Zones and duplicates",
        agent_id=harness.agent_id,
        phone_number_id=harness.phone_number_id,
        phone_provider="twilio",
        recipients=recipients,
        correlation_id=uuid.uuid4().hex,
        **fields,
    )


async def _rows(harness: Harness, campaign_id: str) -> list[Recipient]:
    async with harness.container.sessionmaker() as session:
        result = await session.scalars(
            select(Recipient).where(Recipient.campaign_id == campaign_id).order_by(Recipient.position)
        )
        return list(result.all())


def _at(day: date, hhmm: time, zone: str) -> datetime:
    return datetime.combine(day, hhmm, tzinfo=ZoneInfo(zone)).astimezone(UTC)


async def test_a_perth_number_is_not_dialled_at_nine_adelaide_time(harness: Harness) -> None:
    # Window open only on a weekday three days away, so the real-time scheduler never finds it
    # open; this test's own scheduler runs on an injected clock on that day.
    day = datetime.now(UTC).date() + timedelta(days=3)
    window = CallingWindow(start="09:00", end="20:00", days=[day.weekday()])
    nine_adelaide = _at(day, time(9), "Australia/Adelaide")
    nine_perth = _at(day, time(9), "Australia/Perth")
    perth, sydney = _australian("+618920"), _australian("+612920")
    command = _submit(
        harness,
        [CampaignRecipient(phone_number=perth), CampaignRecipient(phone_number=sydney)],
        calling_window=window,
        scheduled_time_unix=int(nine_adelaide.timestamp()) - 60,
    )
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_for(
        lambda e: e.get("type") == "campaign.updated" and e["campaign"]["campaign_id"] == command.campaign_id,
        what="campaign stored",
    )
    box = harness.container
    # Attempts dialled in real time must not look hours overdue to a clock days ahead.
    clocked = Scheduler(
        make_deps(
            box.settings.model_copy(update={"attempt_timeout_s": 10**9}),
            lambda: UnitOfWork(box.sessionmaker, box.bus),
        )
    )

    await clocked.tick(nine_adelaide)
    rows = {r.phone_number: r for r in await _rows(harness, command.campaign_id)}
    assert rows[perth].time_zones == ["Australia/Adelaide", "Australia/Perth"]
    assert rows[perth].status == "scheduled" and rows[perth].next_attempt_at == nine_perth
    assert rows[sydney].time_zones == ["Australia/Sydney"] and rows[sydney].status != "scheduled"
    deferred = await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == command.campaign_id
            and e["to_number"] == perth
        ),
        what="the Perth recipient reported waiting",
    )
    assert deferred["status"] == "scheduled"
    assert deferred["next_attempt_at_unix"] == int(nine_perth.timestamp())
    assert deferred["time_zones"] == ["Australia/Adelaide", "Australia/Perth"]
    await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["to_number"] == sydney
            and e["status"] == "completed"
        ),
        what="Sydney (09:30 there) called",
    )
    assert perth not in (await harness.stats())["dials_by_number"]

    await clocked.tick(nine_perth - timedelta(seconds=1))
    assert perth not in (await harness.stats())["dials_by_number"]
    await clocked.tick(nine_perth)
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 2
    dials = (await harness.stats())["dials_by_number"]
    assert dials[perth] == 1 and dials[sydney] == 1


async def test_a_window_never_open_in_all_zones_fails_the_recipient_with_the_reason(harness: Harness) -> None:
    day = datetime.now(UTC).date() + timedelta(days=3)
    window = CallingWindow(start="09:00", end="10:00", days=[day.weekday()])  # Perth and Adelaide: never
    perth = _australian("+618920")
    command = _submit(harness, [CampaignRecipient(phone_number=perth)], calling_window=window)
    await harness.publish(command, key=command.campaign_id)
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 1 and done["total_calls_dispatched"] == 0
    (event,) = [e for e in harness.recipient_events(command.campaign_id) if e["status"] == "failed"]
    assert "Australia/Adelaide" in event["reason"] and "Australia/Perth" in event["reason"]
    assert event["time_zones"] == ["Australia/Adelaide", "Australia/Perth"]
    # Completed, but not a clean success: it says nobody was reached, and why.
    assert done["status_reason"] == f"No recipient was reached: 1 failed; first failure: {event['reason']}"
    # The campaign's zone picks one of the number's zones: the same window is then fine.
    perth_zone = _submit(
        harness,
        [CampaignRecipient(phone_number=perth)],
        calling_window=window,
        timezone="Australia/Perth",
        scheduled_time_unix=int(_at(day, time(9), "Australia/Perth").timestamp()),
    )
    await harness.publish(perth_zone, key=perth_zone.campaign_id)
    await harness.wait_status(perth_zone.campaign_id, "pending")
    rows = await _rows(harness, perth_zone.campaign_id)
    assert rows[0].time_zones == ["Australia/Perth"] and rows[0].status == "scheduled"
    await harness.publish(CancelCampaign(campaign_id=perth_zone.campaign_id), key=perth_zone.campaign_id)
    await harness.wait_status(perth_zone.campaign_id, "cancelled")


@pytest.mark.parametrize("zone", ["EST", "Etc/GMT+5", "PST8PDT", "US/Eastern", "Mars/Olympus"])
async def test_a_submission_over_kafka_with_a_zone_that_is_not_a_region_is_refused(
    harness: Harness, zone: str
) -> None:
    command = _submit(harness, [CampaignRecipient(phone_number=_australian("+612920"))], timezone=zone)
    await harness.publish(command, key=command.campaign_id)
    failed = await harness.wait_for(
        lambda e: e.get("type") == "command.failed" and e.get("causation_id") == command.message_id,
        what="command.failed",
    )
    assert failed["status_code"] == 422 and "America/New_York" in failed["error"]
    async with harness.container.sessionmaker() as session:
        assert await session.get(Campaign, command.campaign_id) is None


async def test_the_same_number_across_chunks_is_dialled_once_and_the_later_ones_are_skipped(
    harness: Harness,
) -> None:
    ana = _australian("+612920")
    others = [_australian("+612920") for _ in range(2)]
    command = _submit(
        harness,
        [
            CampaignRecipient(phone_number=ana, name="Ana"),
            CampaignRecipient(phone_number=others[0]),
            CampaignRecipient(phone_number=ana, name="Ana again"),
        ],
        recipient_chunks=2,
    )
    chunk = AddCampaignRecipients(
        campaign_id=command.campaign_id,
        chunk_index=1,
        recipients=[
            CampaignRecipient(phone_number=ana, name="Ben", recipient_id="ben"),
            CampaignRecipient(phone_number=others[1]),
        ],
    )
    await harness.publish(chunk, key=command.campaign_id)  # before the submit: any order
    await harness.publish(command, key=command.campaign_id)
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_scheduled"] == 5 and done["total_calls_finished"] == 5
    assert done["total_calls_dispatched"] == 3
    assert harness.final_states(command.campaign_id) == {
        "r0": "completed",
        "r1": "completed",
        "r2": "skipped_duplicate",
        "ben": "skipped_duplicate",
        "r4": "completed",
    }
    skipped = [e for e in harness.recipient_events(command.campaign_id) if e["status"] == "skipped_duplicate"]
    assert {e["position"] for e in skipped} == {2, 3}
    assert all("r0" in e["reason"] and "position 0" in e["reason"] for e in skipped)
    dials = (await harness.stats())["dials_by_number"]
    assert dials[ana] == 1 and all(dials[n] == 1 for n in others)


async def test_a_duplicate_still_scheduled_from_before_the_rule_is_not_dialled(harness: Harness) -> None:
    """The claim on (campaign, number) holds even when two rows of one number are both scheduled
    (a campaign submitted before duplicates were skipped at submission)."""
    number = _australian("+612920")
    command = _submit(
        harness,
        [CampaignRecipient(phone_number=number), CampaignRecipient(phone_number=number)],
        scheduled_time_unix=int(datetime.now(UTC).timestamp()) + 3600,
    )
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "pending")
    async with harness.container.sessionmaker() as session, session.begin():
        await session.execute(
            update(Recipient)
            .where(Recipient.campaign_id == command.campaign_id, Recipient.position == 1)
            .values(status="scheduled", reason=None)
        )
        await session.execute(
            update(Campaign)
            .where(Campaign.campaign_id == command.campaign_id)
            .values(total_finished=0, scheduled_time_unix=None)
        )
    harness.container.deps.wake.set()
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 2 and done["total_calls_dispatched"] == 1
    assert harness.final_states(command.campaign_id)["r1"] == "skipped_duplicate"
    assert (await harness.stats())["dials_by_number"][number] == 1


async def test_the_campaign_zone_applies_to_a_chunk_that_came_before_the_submit(harness: Harness) -> None:
    early, first = _australian("+618920"), _australian("+618920")
    command = _submit(
        harness,
        [CampaignRecipient(phone_number=first)],
        recipient_chunks=2,
        timezone="Australia/Perth",
        scheduled_time_unix=int(datetime.now(UTC).timestamp()) + 3600,
    )
    chunk = AddCampaignRecipients(
        campaign_id=command.campaign_id, chunk_index=1, recipients=[CampaignRecipient(phone_number=early)]
    )
    await harness.publish(chunk, key=command.campaign_id)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "pending")
    assert [r.time_zones for r in await _rows(harness, command.campaign_id)] == [
        ["Australia/Perth"],
        ["Australia/Perth"],
    ]
    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "cancelled")
