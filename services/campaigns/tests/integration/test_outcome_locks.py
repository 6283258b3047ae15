"""An outcome's locks (`outcomes._locked_attempt`): the campaign, the attempt and the recipient in
one statement, taken in that order (the order every writer of a campaign's rows keeps).

The attempt row is held by another transaction while the outcome is handled: the handler must then
hold the campaign's lock and not yet the recipient's, and once let go, apply the outcome with one
locking statement (three round trips before, on the path from a call's end to the next dial).
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from campaigns import outcomes
from contracts.campaigns import CampaignRecipient, SubmitCampaign
from contracts.telephony import CallStatusChanged

from .conftest import Harness, new_number

pytestmark = pytest.mark.integration


async def test_an_outcome_locks_campaign_attempt_and_recipient_in_order_in_one_statement(
    harness: Harness,
) -> None:
    await harness.configure(call_duration_ms=120_000)  # the call stays open: its outcome is ours
    campaign_id = f"batch_{uuid.uuid4().hex[:12]}"
    await harness.publish(
        SubmitCampaign(
            campaign_id=campaign_id,
            call_name="Outcome locks",
            agent_id=harness.agent_id,
            phone_number_id=harness.phone_number_id,
            phone_provider="twilio",
            concurrency_limit=1,
            recipients=[CampaignRecipient(phone_number=new_number("1"))],
        ),
        key=campaign_id,
    )
    sessions = harness.container.sessionmaker

    async def the_call() -> Any:
        async with sessions() as session:
            return (
                await session.execute(
                    text(
                        "SELECT a.conversation_id, a.recipient_id, a.attempt, a.recipient_pk"
                        " FROM campaigns.attempts a WHERE a.campaign_id = :c AND a.status = 'in_progress'"
                    ),
                    {"c": campaign_id},
                )
            ).first()

    await harness.until(the_call, f"the call of {campaign_id} in progress")
    conversation_id, recipient_id, attempt, recipient_pk = await the_call()
    outcome = CallStatusChanged(
        conversation_id=conversation_id,
        status="completed",
        duration_seconds=1,
        campaign_id=campaign_id,
        recipient_id=recipient_id,
        attempt=attempt,
    )

    # What the handler asked, and nothing else: the engine serves the scheduler and the relay too.
    in_handler: contextvars.ContextVar[bool] = contextvars.ContextVar("in_handler", default=False)
    locking: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if in_handler.get() and "FOR UPDATE" in statement:
            locking.append(statement)

    async def handle() -> None:
        in_handler.set(True)  # the task's own context, which SQLAlchemy's greenlets run in
        await outcomes.call_status_changed(harness.container.deps, outcome)

    engine = harness.container.engine.sync_engine
    async with sessions() as holder, sessions() as probe:
        await holder.execute(
            text(
                "SELECT 1 FROM campaigns.attempts WHERE campaign_id = :c AND recipient_id = :r"
                " AND attempt = :n FOR UPDATE"
            ),
            {"c": campaign_id, "r": recipient_id, "n": attempt},
        )
        holder_pid = await holder.scalar(text("SELECT pg_backend_pid()"))
        event.listen(engine, "before_cursor_execute", count)
        try:
            handled = asyncio.create_task(handle())

            async def waiting_for_the_attempt() -> bool:
                waits = await probe.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"),
                    {"holder": holder_pid},
                )
                await probe.rollback()
                return bool(waits)

            await harness.until(waiting_for_the_attempt, "the outcome waiting for the attempt's lock")

            async def lockable(row: str, value: object) -> bool:
                """Whether `row` (a locking read of one row) gets its lock at once."""
                try:
                    await probe.execute(text(row + " FOR UPDATE NOWAIT"), {"v": value})
                except DBAPIError as exc:
                    if "could not obtain lock" not in str(exc):
                        raise
                    return False
                finally:
                    await probe.rollback()
                return True

            campaign_row = "SELECT 1 FROM campaigns.campaigns WHERE campaign_id = :v"
            recipient_row = "SELECT 1 FROM campaigns.recipients WHERE id = :v"
            assert not await lockable(campaign_row, campaign_id), "the campaign was not locked first"
            assert await lockable(recipient_row, recipient_pk), "the recipient was locked before the attempt"
            await holder.rollback()  # the attempt is free: the outcome goes on
            await asyncio.wait_for(handled, 30)
        finally:
            event.remove(engine, "before_cursor_execute", count)

    assert len(locking) == 1, locking
    async with sessions() as session:
        status = await session.scalar(
            text("SELECT status FROM campaigns.recipients WHERE id = :pk"), {"pk": recipient_pk}
        )
    assert status == "completed"
