"""Post-call webhooks and reconciliation move calls to their final status exactly once."""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text, update

from contracts import topics
from contracts.telephony import PlaceCall
from contracts.webhooks import PostCallWebhookReceived
from telephony.bootstrap import Container
from telephony.models import Call, EarlyPostCall, inbox
from telephony.repository import CallRepository

from .conftest import DEADLINE_S, RECONCILE_AFTER_S, Harness, new_number

pytestmark = pytest.mark.integration

_FAILURE_REASONS = {"5": "busy", "6": "no-answer", "8": "unknown"}


async def _place(harness: Harness, agent_id: str, phone_id: str, digit: str) -> dict[str, Any]:
    command = PlaceCall(
        provider="twilio",
        agent_id=agent_id,
        agent_phone_number_id=phone_id,
        to_number=new_number(digit),
        campaign_id="camp-9",
        recipient_id=f"rec-{digit}",
        attempt=1,
        correlation_id=uuid.uuid4().hex,
    )
    event = await harness.one(command)
    assert event["type"] == "call.placed"
    return event


async def _finished(container: Container, conversation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        conversation = await container.elevenlabs.get_conversation(conversation_id)
        if conversation["status"] in ("done", "failed"):
            return conversation
        assert time.monotonic() < deadline, f"conversation {conversation_id} never finished"
        await asyncio.sleep(0.05)  # polling with a deadline


def _webhook(conversation: dict[str, Any], digit: str) -> PostCallWebhookReceived:
    """What tool-webhooks publishes for the simulator's post-call webhook."""
    conversation_id = conversation["conversation_id"]
    if conversation["status"] == "failed":
        kind = "call_initiation_failure"
        fields: dict[str, Any] = {"failure_reason": _FAILURE_REASONS[digit]}
    else:
        kind = "post_call_transcription"
        analysis = conversation.get("analysis") or {}
        fields = {
            "conversation_status": conversation["status"],
            "call_duration_secs": conversation["metadata"]["call_duration_secs"],
            "termination_reason": conversation["metadata"]["termination_reason"],
            "call_successful": analysis.get("call_successful"),
            "transcript_summary": analysis.get("transcript_summary"),
            "data_collection": {
                k: v["value"] for k, v in (analysis.get("data_collection_results") or {}).items()
            },
        }
    return PostCallWebhookReceived(
        message_id=f"{kind}:{conversation_id}",
        webhook_type=kind,
        conversation_id=conversation_id,
        agent_id=conversation["agent_id"],
        event_timestamp=int(time.time()),
        **fields,
    )


def _changes(harness: Harness, conversation_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in harness.events
        if e["type"] == "call.status_changed" and e["conversation_id"] == conversation_id
    ]


async def test_post_call_webhooks_set_the_final_status_once(
    harness: Harness, container: Container, agent_id: str, twilio_phone_id: str
) -> None:
    expected = {"0": "completed", "5": "busy", "6": "no_answer", "7": "voicemail", "8": "failed"}
    placed = {digit: await _place(harness, agent_id, twilio_phone_id, digit) for digit in [*expected, "1"]}
    webhooks = {
        digit: _webhook(await _finished(container, event["conversation_id"]), digit)
        for digit, event in placed.items()
    }
    # every webhook twice (a replay), then a last one on the same partition as a marker
    for webhook in [*(webhooks[d] for d in expected), *(webhooks[d] for d in expected), webhooks["1"]]:
        await harness.publish(webhook, topic=topics.WEBHOOK_EVENTS)
    marker = placed["1"]["conversation_id"]
    await harness.wait_for(
        lambda e: e["type"] == "call.status_changed" and e["conversation_id"] == marker, what="marker"
    )

    for digit, status in expected.items():
        event = placed[digit]
        changes = _changes(harness, event["conversation_id"])
        assert len(changes) == 1, changes
        change = changes[0]
        assert change["status"] == status
        assert change["source"] == "webhook"
        assert change["causation_id"] == webhooks[digit].message_id
        assert change["correlation_id"] == event["correlation_id"]
        assert (change["campaign_id"], change["recipient_id"], change["attempt"]) == (
            "camp-9",
            f"rec-{digit}",
            1,
        )
        # What a webhook receiver needs about the call, without asking for it (issue 13).
        assert (change["to_number"], change["agent_id"], change["phone_number_id"]) == (
            event["to_number"],
            agent_id,
            twilio_phone_id,
        )
        assert change["started_at_unix"] == event["placed_at_unix"]
        assert change["ended_at_unix"] >= change["started_at_unix"]
    completed = _changes(harness, placed["0"]["conversation_id"])[0]
    assert completed["outcome"] == "appointment_confirmed"
    assert completed["summary"] and completed["duration_seconds"] is not None
    assert _changes(harness, placed["5"]["conversation_id"])[0]["reason"] == "busy"


async def test_post_call_webhooks_fetched_together_share_one_transaction(
    harness: Harness, container: Container, agent_id: str, twilio_phone_id: str
) -> None:
    """Webhooks are consumed in batches: those one fetch returned are recorded in ONE transaction,
    each once (a replay in the same batch included), each with its own status event."""
    expected = {"0": "completed", "5": "busy", "6": "no_answer", "7": "voicemail"}
    placed = {digit: await _place(harness, agent_id, twilio_phone_id, digit) for digit in expected}
    webhooks = {
        digit: _webhook(await _finished(container, event["conversation_id"]), digit)
        for digit, event in placed.items()
    }
    replayed = [*webhooks.values(), webhooks["0"], webhooks["5"]]
    await harness.publish_together(replayed, topics.WEBHOOK_EVENTS)
    conversations = [event["conversation_id"] for event in placed.values()]

    def all_changed() -> bool:
        return all(_changes(harness, c) for c in conversations)

    await harness.until(all_changed, "a status change for every webhook")
    for digit, status in expected.items():
        changes = _changes(harness, placed[digit]["conversation_id"])
        assert [c["status"] for c in changes] == [status], changes
    async with container.sessionmaker() as session:
        writers = (
            await session.scalars(
                text("SELECT xmin::text FROM telephony.calls WHERE conversation_id = ANY(:c)"),
                {"c": conversations},
            )
        ).all()
    assert len(writers) == len(conversations)
    assert len(set(writers)) == 1, f"webhooks were recorded in {len(set(writers))} transactions"


@pytest.mark.parametrize(("digit", "status"), [("0", "completed"), ("5", "busy"), ("8", "failed")])
async def test_webhook_that_beats_its_call_is_applied_when_the_call_is_stored(
    harness: Harness, container: Container, agent_id: str, twilio_phone_id: str, digit: str, status: str
) -> None:
    """The post-call webhook can come before telephony has stored the call it is about (the dial's
    answer is slow, the worker is paused between answer and commit, a call fails at once). It must
    finish the call as soon as the call is stored, not 600 s later by reconciliation (CI saw a
    README campaign stuck at 3 of 4 calls this way)."""
    # The dial is carried out at once; its answer is held back for 3 s.
    await harness.sim.post(
        "/_sim/faults",
        json={
            "method": "POST",
            "path_regex": "^/v1/convai/twilio/outbound-call$",
            "after": True,
            "delay_ms": 3000,
        },
    )
    to_number = new_number(digit)
    command = PlaceCall(
        provider="twilio",
        agent_id=agent_id,
        agent_phone_number_id=twilio_phone_id,
        to_number=to_number,
        campaign_id="camp-early",
        recipient_id=f"rec-{digit}",
        attempt=1,
        correlation_id=uuid.uuid4().hex,
    )
    placing = asyncio.create_task(harness.one(command))

    async def dialled() -> list[dict[str, Any]]:
        return list((await harness.sim_get("/_sim/calls", to_number=to_number))["calls"])

    async def reached() -> bool:
        return bool(await dialled())

    await harness.until(reached, "the dial reached ElevenLabs")
    [sim_call] = await dialled()
    conversation_id = sim_call["conversation_id"]
    async with container.engine.connect() as blocker:
        # Holds telephony's commit of the call (step 3 finishes its ledger row) while the webhook
        # is recorded; nothing on the webhook's path touches that table.
        await blocker.execute(text("LOCK TABLE telephony.upstream_commands IN SHARE MODE"))
        assert await _call_status(container, conversation_id) is None, "the dial's answer came too soon"
        webhook = _webhook(await _finished(container, conversation_id), digit)
        await harness.publish(webhook, topic=topics.WEBHOOK_EVENTS, key=conversation_id)
        await harness.until(lambda: _handled(harness, webhook.message_id), "the webhook handled")
        assert await _call_status(container, conversation_id) is None
        await blocker.rollback()

    placed = await placing
    assert placed["conversation_id"] == conversation_id
    change = await harness.wait_for(
        lambda e: e["type"] == "call.status_changed" and e["conversation_id"] == conversation_id,
        what="the early webhook's status",
    )
    assert (change["status"], change["source"]) == (status, "webhook"), change
    assert change["causation_id"] == webhook.message_id
    assert (change["campaign_id"], change["recipient_id"], change["attempt"]) == (
        "camp-early",
        f"rec-{digit}",
        1,
    )
    order = [e["type"] for e in harness.events if e.get("conversation_id") == conversation_id]
    assert order.index("call.placed") < order.index("call.status_changed"), order
    assert await _call_status(container, conversation_id) == status
    assert await _early(container, conversation_id) == 0
    assert len(_changes(harness, conversation_id)) == 1


async def _call_status(container: Container, conversation_id: str) -> str | None:
    async with container.sessionmaker() as session:
        status: str | None = await session.scalar(
            select(Call.status).where(Call.conversation_id == conversation_id)
        )
        return status


async def _early(container: Container, conversation_id: str) -> int:
    async with container.sessionmaker() as session:
        return len(
            (
                await session.scalars(
                    select(EarlyPostCall.message_id).where(EarlyPostCall.conversation_id == conversation_id)
                )
            ).all()
        )


async def test_webhook_for_an_unknown_conversation_is_kept_then_forgotten(
    harness: Harness, container: Container
) -> None:
    """Not ours (an inbound call, another integration's): kept in case its call is being stored,
    changes nothing, and is forgotten at reconciliation's give-up age."""
    webhook = PostCallWebhookReceived(
        webhook_type="post_call_transcription",
        conversation_id=f"conv_unknown_{uuid.uuid4().hex}",
        event_timestamp=int(time.time()),
        conversation_status="done",
    )
    await harness.publish(webhook, topic=topics.WEBHOOK_EVENTS)
    # a later command on the commands topic cannot order this; the inbox row shows it was handled
    deadline = time.monotonic() + DEADLINE_S
    while not await _handled(harness, webhook.message_id):
        assert time.monotonic() < deadline, "webhook never handled"
        await asyncio.sleep(0.05)  # polling with a deadline
    assert _changes(harness, webhook.conversation_id) == []
    assert await _early(container, webhook.conversation_id) == 1
    async with container.sessionmaker() as session, session.begin():
        await session.execute(
            update(EarlyPostCall)
            .where(EarlyPostCall.conversation_id == webhook.conversation_id)
            .values(received_at=datetime.now(UTC) - timedelta(hours=3))
        )
    await harness.until(
        lambda: _early_gone(container, webhook.conversation_id), "the old early webhook forgotten"
    )


async def _early_gone(container: Container, conversation_id: str) -> bool:
    return await _early(container, conversation_id) == 0


async def _handled(harness: Harness, message_id: str) -> bool:
    async with harness.container.engine.connect() as connection:
        row = await connection.execute(select(inbox.c.message_id).where(inbox.c.message_id == message_id))
        return row.first() is not None


async def test_call_whose_webhook_never_comes_is_reconciled(
    harness: Harness, agent_id: str, twilio_phone_id: str
) -> None:
    placed = await _place(harness, agent_id, twilio_phone_id, "9")
    conversation_id = placed["conversation_id"]
    change = await harness.wait_for(
        lambda e: e["type"] == "call.status_changed" and e["conversation_id"] == conversation_id,
        deadline_s=RECONCILE_AFTER_S + DEADLINE_S,
        what="reconciled status",
    )
    assert (change["status"], change["source"]) == ("completed", "reconciliation")
    assert change["outcome"] == "appointment_confirmed"
    assert (change["campaign_id"], change["recipient_id"]) == ("camp-9", "rec-9")
    assert len(_changes(harness, conversation_id)) == 1


async def test_reconciliation_gives_up_on_a_call_without_result(
    harness: Harness, container: Container
) -> None:
    conversation_id = f"conv_lost_{uuid.uuid4().hex}"
    async with container.sessionmaker() as session, session.begin():
        session.add(
            Call(
                conversation_id=conversation_id,
                attempt_id=uuid.uuid4().hex,
                provider="twilio",
                agent_id="agent_x",
                phone_number_id="phnum_x",
                to_number="+15550000001",
                status="dialing",
                campaign_id="camp-lost",
                placed_at=datetime.now(UTC) - timedelta(hours=3),
            )
        )
    change = await harness.wait_for(
        lambda e: e["type"] == "call.status_changed" and e["conversation_id"] == conversation_id,
        what="gave up",
    )
    assert (change["status"], change["reason"], change["source"]) == (
        "failed",
        "no result from ElevenLabs",
        "reconciliation",
    )
    assert change["campaign_id"] == "camp-lost"
    assert (change["to_number"], change["agent_id"], change["phone_number_id"]) == (
        "+15550000001",
        "agent_x",
        "phnum_x",
    )


async def test_storing_a_call_takes_its_lock_in_the_same_statement(container: Container) -> None:
    """The call's lock (what serialises storing it and recording its webhook) is taken by the
    INSERT itself, and held: another transaction cannot have it until this one ends."""
    conversation_id = f"conv_{uuid.uuid4().hex}"
    statements: list[str] = []
    # The engine serves the relay and reconciliation meanwhile: only this task's statements (the
    # service's tasks were started with contexts of their own).
    mine: contextvars.ContextVar[bool] = contextvars.ContextVar("mine", default=False)
    mine.set(True)

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if mine.get():
            statements.append(statement)

    async with container.sessionmaker() as session, container.engine.connect() as other:

        async def lock_free() -> bool:
            taken = await other.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"),
                {"k": f"telephony:call:{conversation_id}"},
            )
            await other.rollback()
            return bool(taken)

        async with session.begin():
            event.listen(container.engine.sync_engine, "before_cursor_execute", count)
            try:
                await CallRepository(session).add_locked(
                    conversation_id=conversation_id,
                    attempt_id=uuid.uuid4().hex,
                    provider="twilio",
                    agent_id="agent_1",
                    phone_number_id="phnum_1",
                    to_number="+14155550100",
                    status="dialing",
                    attempt=1,
                    placed_at=datetime.now(UTC),
                )
            finally:
                event.remove(container.engine.sync_engine, "before_cursor_execute", count)
            assert len(statements) == 1, statements
            assert not await lock_free(), "the call's lock was not held"
        assert await lock_free()  # released with the transaction
    assert await _call_status(container, conversation_id) == "dialing"
