"""Campaigns end to end through Kafka, telephony, the simulator and tool-webhooks."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bus.secrets import Undecryptable, column_context, message_context
from campaigns import control
from campaigns.bootstrap import make_deps
from campaigns.models import Campaign, DoNotCall
from campaigns.uow import UnitOfWork
from contracts.campaigns import (
    AddCampaignRecipients,
    AddDoNotCall,
    CampaignRecipient,
    CancelCampaign,
    PauseCampaign,
    RemoveDoNotCall,
    ResumeCampaign,
    SubmitCampaign,
)
from tool_webhooks.models import Conversation

from .conftest import FINAL, Harness, new_number

pytestmark = pytest.mark.integration

EXPECTED = {
    **dict.fromkeys("012349", "completed"),
    "5": "busy",
    "6": "no_answer",
    "7": "voicemail",
    "8": "failed",
}


def _submit(harness: Harness, numbers: list[str], **fields: Any) -> SubmitCampaign:
    return SubmitCampaign(
        campaign_id=f"batch_{uuid.uuid4().hex[:12]}",
        call_name="Test campaign",
        agent_id=harness.agent_id,
        phone_number_id=harness.phone_number_id,
        phone_provider="twilio",
        recipients=[
            CampaignRecipient(phone_number=n, name=f"N{i}", dynamic_variables={"i": i})
            for i, n in enumerate(numbers)
        ],
        correlation_id=uuid.uuid4().hex,
        **fields,
    )


async def test_mixed_outcomes_retry_per_outcome_with_exact_counters(harness: Harness) -> None:
    numbers = [new_number(str(i % 10)) for i in range(30)]
    command = _submit(harness, numbers, retry_count=2, concurrency_limit=3)
    await harness.publish(command, key=command.campaign_id)

    # Up to 90 calls, three at a time: a bound on waiting, generous for a machine shared with
    # other suites (it met 60 s there), not a speed check.
    done = await harness.wait_status(command.campaign_id, "completed", deadline_s=180)
    assert done["total_calls_scheduled"] == 30
    assert done["total_calls_dispatched"] == 30
    assert done["total_calls_finished"] == 30

    # The first answer to the submit is the pending snapshot (what the API returns).
    first = harness.campaign_events(command.campaign_id)[0]
    assert first["status"] == "pending" and first["total_calls_scheduled"] == 30

    events = harness.recipient_events(command.campaign_id)
    finals = harness.final_states(command.campaign_id)
    assert len(finals) == 30
    by_id = {e["recipient_id"]: e for e in events}
    stats = await harness.stats()
    for position, number in enumerate(numbers):
        rid = f"r{position}"
        expected = EXPECTED[number[-1]]
        assert finals[rid] == expected, (number, finals[rid])
        # exactly one final event per recipient
        assert sum(1 for e in events if e["recipient_id"] == rid and e["status"] in FINAL) == 1
        dials = stats["dials_by_number"].get(number, 0)
        assert dials == (1 if expected == "completed" else 3), (number, dials)
        assert by_id[rid]["retry_count"] == (0 if expected == "completed" else 2)
        assert by_id[rid]["position"] == position and by_id[rid]["to_number"] == number
        if expected in ("completed", "voicemail"):
            assert by_id[rid]["conversation_id"]
    assert stats["max_concurrent_observed"] <= 3
    # Counters never go backwards and are consistent in every snapshot.
    snapshots = harness.campaign_events(command.campaign_id)
    for before, after in itertools.pairwise(snapshots):
        assert after["total_calls_finished"] >= before["total_calls_finished"]
        assert after["total_calls_dispatched"] >= before["total_calls_dispatched"]
    for s in snapshots:
        assert s["total_calls_finished"] <= s["total_calls_scheduled"]


async def test_rate_limited_upstream_slows_down_without_failing_anyone(harness: Harness) -> None:
    # Calls long enough that six dials in a row must overlap more than two.
    await harness.configure(max_concurrent_calls=2, call_duration_ms=700)
    numbers = [new_number(str(i % 5)) for i in range(8)]  # all complete
    command = _submit(harness, numbers, concurrency_limit=6)
    await harness.publish(command, key=command.campaign_id)

    done = await harness.wait_status(command.campaign_id, "completed", deadline_s=60)
    assert done["total_calls_finished"] == 8
    finals = harness.final_states(command.campaign_id)
    assert set(finals.values()) == {"completed"} and len(finals) == 8
    stats = await harness.stats()
    assert stats["rate_limited"] > 0  # we did hit the limit
    assert stats["max_concurrent_observed"] <= 2
    for number in numbers:
        assert stats["dials_by_number"][number] == 1  # a 429 rings nobody; each rang once


async def test_the_global_concurrency_cap_holds_across_campaigns(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAMPAIGNS_GLOBAL_CONCURRENCY bounds the calls of every campaign together: the dispatch
    reads the calls in flight of all campaigns (not only its own) with the campaign's row."""
    monkeypatch.setattr(harness.container.deps.settings, "global_concurrency", 3)
    await harness.configure(call_duration_ms=600)
    commands = [_submit(harness, [new_number("1") for _ in range(6)], concurrency_limit=3) for _ in range(2)]
    for command in commands:
        await harness.publish(command, key=command.campaign_id)
    for command in commands:
        done = await harness.wait_status(command.campaign_id, "completed", deadline_s=120)
        assert done["total_calls_finished"] == 6
    stats = await harness.stats()
    assert stats["max_concurrent_observed"] <= 3  # each campaign alone may have 3: 6 without the cap
    assert stats["max_concurrent_observed"] >= 2


async def test_future_start_waits_then_runs(harness: Harness) -> None:
    # A minute ahead: the background scheduler (on the real clock) leaves it alone; the test's own
    # scheduler passes move the clock.
    command = _submit(harness, [new_number("1")], scheduled_time_unix=int(time.time()) + 60)
    await harness.publish(command, key=command.campaign_id)
    pending = await harness.wait_status(command.campaign_id, "pending")
    assert pending["scheduled_time_unix"] == command.scheduled_time_unix
    assert command.scheduled_time_unix is not None
    start = datetime.fromtimestamp(command.scheduled_time_unix, UTC)
    await harness.scheduler_pass(start - timedelta(seconds=1))
    assert (await harness.campaign_row(command.campaign_id)).status == "pending"
    assert not [c for c in harness.campaign_events(command.campaign_id) if c["status"] == "running"]
    await harness.scheduler_pass(start)
    running = await harness.wait_status(command.campaign_id, "running")
    assert running["last_updated_at_unix"] == command.scheduled_time_unix  # started by the pass at start
    await harness.wait_status(command.campaign_id, "completed")
    assert (await harness.stats())["total_dials"] == 1


async def test_cancel_stops_pending_calls_and_in_flight_calls_finish(harness: Harness) -> None:
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
    cancelled = await harness.wait_status(command.campaign_id, "cancelled")
    assert cancelled["total_calls_dispatched"] <= 3
    # in-flight calls finish and are recorded; finally every recipient is finished
    await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.updated"
            and e["campaign"]["campaign_id"] == command.campaign_id
            and e["campaign"]["total_calls_finished"] == 10
        ),
        what="all finished after cancel",
    )
    finals = harness.final_states(command.campaign_id)
    assert finals and set(finals.values()) == {"completed"}  # only dialled ones have events
    assert (await harness.stats())["total_dials"] == len(finals)
    assert harness.campaign_events(command.campaign_id)[-1]["status"] == "cancelled"


async def test_pause_stops_new_dials_and_resume_continues(harness: Harness) -> None:
    await harness.configure(call_duration_ms=600)
    numbers = [new_number("2") for _ in range(6)]
    command = _submit(harness, numbers, concurrency_limit=1)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_for(
        type="campaign.recipient_updated",
        campaign_id=command.campaign_id,
        status="dialing",
        what="first dial",
    )
    await harness.publish(PauseCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    paused = await harness.wait_status(command.campaign_id, "paused")
    # the in-flight call ends; nothing new is dialled
    await harness.dispatches_nothing_more(command.campaign_id, paused["total_calls_dispatched"])
    assert (await harness.stats())["total_dials"] == paused["total_calls_dispatched"] < 6
    await harness.publish(ResumeCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "running")
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 6
    assert all(c == 1 for c in (await harness.stats())["dials_by_number"].values())


async def test_do_not_call_numbers_are_skipped_and_invalid_numbers_fail(harness: Harness) -> None:
    blocked = new_number("3")
    dnc = AddDoNotCall(phone_number=blocked, reason="opted out")
    await harness.publish(dnc, key=blocked)
    await harness.wait_for(
        lambda e: e.get("type") == "do_not_call.added" and e.get("causation_id") == dnc.message_id, what="dnc"
    )
    ok = new_number("4")
    command = _submit(harness, [blocked, ok, "+15555550123"])
    await harness.publish(command, key=command.campaign_id)
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_scheduled"] == 3 and done["total_calls_finished"] == 3
    assert done["total_calls_dispatched"] == 1
    finals = harness.final_states(command.campaign_id)
    assert finals == {"r0": "skipped_dnc", "r1": "completed", "r2": "failed"}
    assert done["status_reason"] is None  # one was reached
    stats = await harness.stats()
    assert blocked not in stats["dials_by_number"]


async def test_adding_a_listed_number_again_keeps_its_date_and_a_reason_not_given_again(
    harness: Harness,
) -> None:
    # Found by a fresh user's trial: the second POST /do-not-call of a number, without a reason,
    # erased the first one's reason and date. The opt-out tool's command takes the same path.
    box = harness.container
    # Every call of the clock a day later: a date that changes is seen.
    clock = (datetime(2026, 3, 1, 9, tzinfo=UTC) + timedelta(days=d) for d in itertools.count())
    deps = make_deps(box.settings, lambda: UnitOfWork(box.sessionmaker, box.bus), clock=lambda: next(clock))
    number = new_number("3")
    first_at = int(datetime(2026, 3, 1, 9, tzinfo=UTC).timestamp())

    async def add(**fields: Any) -> tuple[tuple[str | None, int], dict[str, Any]]:
        command = AddDoNotCall(phone_number=number, **fields)
        await control.add_do_not_call(deps, command)
        event = await harness.wait_for(
            lambda e: e.get("type") == "do_not_call.added" and e.get("causation_id") == command.message_id,
            what="do_not_call.added",
        )
        async with box.sessionmaker() as session:
            row = await session.get(DoNotCall, number)
        assert row is not None
        return (row.reason, row.added_at_unix), event

    assert (await add(reason="asked"))[0] == ("asked", first_at)
    for again in ({}, {"reason": None}, {"reason": "  "}):
        entry, event = await add(**again)
        assert entry == ("asked", first_at), again
        # The event tells the entry as the list keeps it (the gateway's read model projects it).
        assert (event["reason"], event["added_at_unix"]) == entry
    # A reason given again replaces it, by the API or the callee's opt-out during a call.
    entry, event = await add(reason="Opted out by voice", source="voice", conversation_id="conv_dnc")
    assert entry == ("Opted out by voice", first_at) and event["source"] == "voice"
    # Off the list and on again: a new entry.
    await control.remove_do_not_call(deps, RemoveDoNotCall(phone_number=number))
    entry, _ = await add()
    assert entry[0] is None and entry[1] > first_at


async def test_chunks_in_any_order_duplicates_ignored(harness: Harness) -> None:
    numbers = [new_number("1") for _ in range(6)]
    command = _submit(harness, numbers[:2], recipient_chunks=3)
    chunk2 = AddCampaignRecipients(
        campaign_id=command.campaign_id,
        chunk_index=2,
        recipients=[CampaignRecipient(phone_number=n) for n in numbers[4:]],
    )
    chunk1 = AddCampaignRecipients(
        campaign_id=command.campaign_id,
        chunk_index=1,
        recipients=[CampaignRecipient(phone_number=n, recipient_id=f"given-{n}") for n in numbers[2:4]],
    )
    await harness.publish(chunk2, key=command.campaign_id)
    await harness.publish(command, key=command.campaign_id)
    await harness.publish(command, key=command.campaign_id)  # duplicate submit
    dup = chunk2.model_copy(update={"message_id": uuid.uuid4().hex})
    await harness.publish(dup, key=command.campaign_id)  # duplicate chunk, new message id
    marker = RemoveDoNotCall(phone_number=new_number("0"))  # handled after all of the above
    await harness.publish(marker, key=command.campaign_id)
    await harness.wait_for(causation_id=marker.message_id, what="the marker's outcome")
    await harness.scheduler_pass()
    campaign = await harness.campaign_row(command.campaign_id)
    assert (campaign.status, campaign.total_dispatched) == ("pending", 0)  # until every chunk arrived
    assert (await harness.stats())["total_dials"] == 0
    await harness.publish(chunk1, key=command.campaign_id)
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_scheduled"] == 6 and done["total_calls_finished"] == 6
    by_id = {e["recipient_id"]: e for e in harness.recipient_events(command.campaign_id)}
    assert {rid: e["position"] for rid, e in by_id.items()} == {
        "r0": 0,
        "r1": 1,
        f"given-{numbers[2]}": 2,
        f"given-{numbers[3]}": 3,
        "r4": 4,
        "r5": 5,
    }
    assert by_id["r4"]["to_number"] == numbers[4]
    assert all(c == 1 for c in (await harness.stats())["dials_by_number"].values())


async def test_raw_json_from_a_plain_producer(harness: Harness) -> None:
    campaign_id = f"batch_raw_{uuid.uuid4().hex[:8]}"
    numbers = [new_number("0"), new_number("2")]
    await harness.publish_raw(
        {
            "type": "campaign.submit",
            "message_id": uuid.uuid4().hex,
            "campaign_id": campaign_id,
            "call_name": "Raw",
            "agent_id": harness.agent_id,
            "phone_number_id": harness.phone_number_id,
            "recipients": [
                {"phone_number": numbers[0], "name": "Ann", "email": "ann@example.com", "extra": "ignored"},
                {"phone_number": numbers[1], "dynamic_variables": {"x": 1}},
            ],
            "retry_count": 1,
            "future_field": {"ignored": True},
        },
        key=campaign_id,
    )
    done = await harness.wait_status(campaign_id, "completed")
    assert done["total_calls_finished"] == 2 and done["phone_provider"] is None
    assert harness.final_states(campaign_id) == {"r0": "completed", "r1": "completed"}


async def test_store_credentials_are_bound_to_each_row_they_are_kept_in(harness: Harness) -> None:
    """Encrypted as the gateway does (bound to the command field), kept by campaigns bound to the
    campaign's row, handed on bound to the field again, and kept by tool-webhooks bound to the
    conversation's row: readable at each place, and only there."""
    keyring = harness.settings.keyring
    field = message_context("ecommerce_credentials_encrypted")
    credentials = json.dumps({"platform": "shopify", "base_url": "https://shop.example", "access_token": "t"})
    command = _submit(
        harness,
        [new_number("1")],
        ecommerce_platform="shopify",
        ecommerce_credentials_encrypted=keyring.encrypt(credentials, context=field),
    )
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "completed")

    async with harness.container.sessionmaker() as session:
        campaign = await session.get(Campaign, command.campaign_id)
    assert campaign is not None and campaign.ecommerce_credentials_encrypted is not None
    kept = campaign.ecommerce_credentials_encrypted
    row = column_context(Campaign.ecommerce_credentials_encrypted, command.campaign_id)
    assert keyring.decrypt(kept, context=row) == credentials
    with pytest.raises(Undecryptable):
        keyring.decrypt(kept, context=field)

    (conversation_id,) = {
        e["conversation_id"] for e in harness.recipient_events(command.campaign_id) if e["conversation_id"]
    }
    deadline = time.monotonic() + 10
    while True:  # tool-webhooks projects CallPlaced on its own schedule
        async with harness.container.engine.connect() as connection:
            stored = await connection.scalar(
                select(Conversation.ecommerce_credentials_encrypted).where(
                    Conversation.conversation_id == conversation_id
                )
            )
        if stored is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)  # polling with a deadline
    assert stored is not None and stored != kept
    there = column_context(Conversation.ecommerce_credentials_encrypted, conversation_id)
    assert keyring.decrypt(stored, context=there) == credentials
    with pytest.raises(Undecryptable):
        keyring.decrypt(stored, context=row)
