"""Every recipient state is announced: a consumer of the campaign events builds each recipient's
state from the events alone, bulk changes (staging, a cancel) included."""

from __future__ import annotations

import time
import uuid

import pytest

from contracts.campaigns import (
    RECIPIENTS_PER_EVENT,
    AddCampaignRecipients,
    CampaignRecipient,
    CancelCampaign,
    SubmitCampaign,
)

from .conftest import FINAL, Harness, new_number

pytestmark = pytest.mark.integration


def _submit(harness: Harness, numbers: list[str], **fields: object) -> SubmitCampaign:
    return SubmitCampaign.model_validate(
        {
            "campaign_id": f"batch_{uuid.uuid4().hex[:12]}",
            "call_name": "Bulk events",
            "agent_id": harness.agent_id,
            "phone_number_id": harness.phone_number_id,
            "phone_provider": "twilio",
            "recipients": [CampaignRecipient(phone_number=n) for n in numbers],
            **fields,
        }
    )


async def test_a_cancel_announces_each_waiting_recipient_it_closes(harness: Harness) -> None:
    await harness.configure(call_duration_ms=1500)
    numbers = [new_number("1") for _ in range(10)]
    command = _submit(harness, numbers, concurrency_limit=2)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == command.campaign_id
            and e["status"] == "in_progress"
        ),
        what="a call in progress",
    )
    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.updated"
            and e["campaign"]["campaign_id"] == command.campaign_id
            and e["campaign"]["total_calls_finished"] == 10
        ),
        what="all finished after cancel",
    )

    # Staged once, before any dial: every recipient, waiting, in position order.
    [staged] = harness.bulk_events(command.campaign_id, "staged")
    assert (staged["part_index"], staged["part_count"]) == (0, 1)
    assert [(r["recipient_id"], r["position"], r["to_number"]) for r in staged["recipients"]] == [
        (f"r{i}", i, n) for i, n in enumerate(numbers)
    ]
    assert {r["status"] for r in staged["recipients"]} == {"scheduled"}

    # The cancel closed the waiting ones in one event, published with the cancel's answer.
    [closed] = harness.bulk_events(command.campaign_id, "closed")
    assert closed["status"] == "cancelled" and closed["reason"] == "Campaign cancelled"
    closed_ids = [r["recipient_id"] for r in closed["recipients"]]
    dialled = {e["recipient_id"] for e in harness.recipient_events(command.campaign_id)}
    assert closed_ids and not set(closed_ids) & dialled
    assert set(closed_ids) | dialled == {f"r{i}" for i in range(10)}
    assert [r["position"] for r in closed["recipients"]] == sorted(int(i[1:]) for i in closed_ids)

    # From the events alone: every recipient final, the dialled ones completed, the rest cancelled.
    states = harness.states(command.campaign_id)
    assert len(states) == 10 and {s for s, _ in states.values()} <= FINAL
    assert {rid for rid, (s, _) in states.items() if s == "cancelled"} == set(closed_ids)
    assert {rid for rid, (s, _) in states.items() if s == "completed"} == dialled


async def test_bulk_events_come_in_parts_under_the_message_limit(harness: Harness) -> None:
    size = 2 * RECIPIENTS_PER_EVENT + 1
    numbers: list[str] = []
    while len(numbers) < size:  # distinct: a repeated number would be skipped as a duplicate
        if (number := new_number("1")) not in numbers:
            numbers.append(number)
    # Starts in an hour: staged and waiting, nobody dialled, when the cancel comes.
    command = _submit(harness, numbers, scheduled_time_unix=int(time.time()) + 3600)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "pending")
    staged = harness.bulk_events(command.campaign_id, "staged")
    assert [(e["part_index"], e["part_count"]) for e in staged] == [(0, 3), (1, 3), (2, 3)]
    assert [len(e["recipients"]) for e in staged] == [500, 500, 1]
    assert [r["position"] for e in staged for r in e["recipients"]] == list(range(size))

    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    cancelled = await harness.wait_status(command.campaign_id, "cancelled")
    closed = harness.bulk_events(command.campaign_id, "closed")
    assert [(e["part_index"], e["part_count"]) for e in closed] == [(0, 3), (1, 3), (2, 3)]
    assert [r["recipient_id"] for e in closed for r in e["recipients"]] == [f"r{i}" for i in range(size)]
    assert cancelled["total_calls_finished"] == size
    assert set(harness.states(command.campaign_id).values()) == {("cancelled", "Campaign cancelled")}
    assert (await harness.stats())["total_dials"] == 0


async def test_recipients_closed_before_staging_are_staged_with_their_final_status(
    harness: Harness,
) -> None:
    first, late = [new_number("1"), new_number("1")], [new_number("1"), "not a number"]
    command = _submit(harness, first, recipient_chunks=2)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "pending")
    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "cancelled")
    assert not harness.bulk_events(command.campaign_id, "staged")  # not every chunk is in yet

    chunk = AddCampaignRecipients(
        campaign_id=command.campaign_id,
        chunk_index=1,
        recipients=[CampaignRecipient(phone_number=n) for n in late],
    )
    await harness.publish(chunk, key=command.campaign_id)
    await harness.wait_for(
        lambda e: e.get("type") == "campaign.recipients_staged" and e["campaign_id"] == command.campaign_id,
        what="staged",
    )
    [staged] = harness.bulk_events(command.campaign_id, "staged")
    assert [(r["recipient_id"], r["status"], r["reason"]) for r in staged["recipients"]] == [
        ("r0", "cancelled", "Campaign cancelled"),
        ("r1", "cancelled", "Campaign cancelled"),
        ("r2", "cancelled", "Campaign cancelled"),
        ("r3", "failed", staged["recipients"][3]["reason"]),
    ]
    assert staged["recipients"][3]["reason"]  # why the number was refused
    assert not harness.bulk_events(command.campaign_id, "closed")
    assert {s for s, _ in harness.states(command.campaign_id).values()} == {"cancelled", "failed"}
