"""Call outcomes consumed in batches (`handlers.register`: telephony events with `batch=True`).

The outcomes are telephony's `call.status_changed` events for calls the simulator holds open, put on
the topic as ONE Kafka record batch, so the service fetches them together: one shared transaction
for all of them, each outcome applied once (a duplicate in the same batch has no effect), and the
scheduler woken only after that transaction committed.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from bus import batch
from contracts import topics
from contracts.campaigns import CampaignRecipient, SubmitCampaign
from contracts.telephony import CallStatusChanged

from .conftest import Harness, new_number

pytestmark = pytest.mark.integration

RECIPIENTS = 6


async def test_outcomes_fetched_together_apply_once_and_wake_after_commit(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calls that outlast the test: telephony reports them placed, the outcomes are ours.
    await harness.configure(call_duration_ms=120_000)
    campaign_id = f"batch_{uuid.uuid4().hex[:12]}"
    command = SubmitCampaign(
        campaign_id=campaign_id,
        call_name="Outcomes in one batch",
        agent_id=harness.agent_id,
        phone_number_id=harness.phone_number_id,
        phone_provider="twilio",
        concurrency_limit=RECIPIENTS,
        recipients=[CampaignRecipient(phone_number=new_number("1")) for _ in range(RECIPIENTS)],
    )
    await harness.publish(command, key=campaign_id)

    sessions = harness.container.sessionmaker

    async def in_progress() -> list[tuple[str, str, int]]:
        async with sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT conversation_id, recipient_id, attempt FROM campaigns.attempts"
                    " WHERE campaign_id = :c AND status = 'in_progress'"
                ),
                {"c": campaign_id},
            )
            return [(r[0], r[1], r[2]) for r in rows]

    async def all_in_progress() -> bool:
        return len(await in_progress()) == RECIPIENTS

    await harness.until(all_in_progress, f"{RECIPIENTS} calls of {campaign_id} in progress")
    calls = await in_progress()

    # Whether the scheduler was told to look while the outcomes' transaction was still open (it
    # would then read the state from before them and go back to sleep).
    wakes: list[bool] = []
    wake = harness.container.deps.wake
    real_set = wake.set

    def spying_set() -> None:
        shared = batch.current()
        wakes.append(shared is not None and shared.session is not None and shared.session.in_transaction())
        real_set()

    monkeypatch.setattr(wake, "set", spying_set)

    outcomes = [
        CallStatusChanged(
            conversation_id=conversation_id,
            status="completed",
            duration_seconds=1,
            campaign_id=campaign_id,
            recipient_id=recipient_id,
            attempt=attempt,
        )
        for conversation_id, recipient_id, attempt in calls
    ]
    # The first outcome again (a redelivery): the same message id, in the same batch.
    records = [*outcomes, outcomes[0]]
    await harness.publish_together(records, topics.TELEPHONY_EVENTS, key=campaign_id)

    done = await harness.wait_status(campaign_id, "completed")
    assert done["total_calls_finished"] == RECIPIENTS
    completed = [
        e["recipient_id"] for e in harness.recipient_events(campaign_id) if e["status"] == "completed"
    ]
    assert sorted(completed) == sorted(recipient_id for _, recipient_id, _ in calls), completed

    # One transaction applied them all (xmin: the transaction that last wrote the row).
    async with sessions() as session:
        writers = (
            await session.scalars(
                text("SELECT xmin::text FROM campaigns.attempts WHERE campaign_id = :c AND status = 'ended'"),
                {"c": campaign_id},
            )
        ).all()
    assert len(writers) == RECIPIENTS
    assert len(set(writers)) == 1, f"outcomes were applied in {len(set(writers))} transactions"

    # The wake-ups run right after the commit, before the outbox relays what it committed: they
    # are all in by the time the campaign's completion has arrived.
    assert len(wakes) >= RECIPIENTS, wakes
    assert not any(wakes), "the scheduler was woken before the outcomes were committed"
