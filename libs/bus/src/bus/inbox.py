"""Idempotent consumption: claim a message id inside the handler's transaction; prune old claims."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import String, Table, bindparam, cast, delete, func, literal, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.expression import ColumnClause

from bus import batch


async def claim(session: AsyncSession, inbox: Table, consumer: str, message_id: str) -> bool:
    """True the first time `consumer` sees `message_id`; False for a redelivery.

    Runs in the caller's transaction, so a rollback forgets the claim together with the work.
    In a batch (`bus.batch`) the first claim claims every message of the batch in one INSERT;
    the ids no handler claimed are released again before the batch commits, so the inbox ends as
    if each handler had claimed its own.
    """
    shared = batch.current()
    if shared is not None and shared.session is session and message_id in shared.message_ids:
        return await _claim_in_batch(shared, session, inbox, consumer, message_id)
    result = await session.execute(_claim_one(inbox), {"consumer": consumer, "message_id": message_id})
    return result.first() is not None


@functools.lru_cache(maxsize=64)
def _claim_one(inbox: Table) -> Any:
    # Built once per inbox: built per message, SQLAlchemy spent ~0.1-0.2 ms constructing it and
    # computing its cache key, for every message every service handles (bench/README, issue 17).
    return (
        insert(inbox)
        .values(consumer=bindparam("consumer"), message_id=bindparam("message_id"))
        .on_conflict_do_nothing()
        .returning(inbox.c.message_id)
    )


async def _claim_in_batch(
    shared: batch.SharedTransaction, session: AsyncSession, inbox: Table, consumer: str, message_id: str
) -> bool:
    key = (inbox.fullname, consumer)
    claims = shared.claims.get(key)
    if claims is None:
        # In one order everywhere: two consumers claiming overlapping batches (after a rebalance,
        # or a paused worker waking) wait for each other instead of deadlocking.
        ids = sorted(set(shared.message_ids))
        inserted = await session.scalars(
            insert(inbox)
            .from_select(
                ["consumer", "message_id"],
                select(literal(consumer), func.unnest(cast(ids, ARRAY(String)))),
            )
            .on_conflict_do_nothing()
            .returning(inbox.c.message_id)
        )
        new = set(inserted)
        claims = shared.claims[key] = {mid: mid in new for mid in ids}
        shared.before_commit(lambda: _release_unclaimed(session, inbox, consumer, claims))
    first = claims[message_id]
    claims[message_id] = False  # the same id again in this batch is a redelivery
    return first


async def _release_unclaimed(
    session: AsyncSession, inbox: Table, consumer: str, claims: dict[str, bool]
) -> None:
    # A message whose handler never claimed it (it had nothing to do) must not read as processed.
    unclaimed = [mid for mid, open_ in claims.items() if open_]
    if unclaimed:
        await session.execute(
            delete(inbox).where(inbox.c.consumer == consumer, inbox.c.message_id.in_(unclaimed))
        )


async def prune_batch(connection: AsyncConnection, inbox: Table, cutoff: datetime, batch: int) -> int:
    """Delete at most `batch` rows processed before `cutoff`; returns how many went.

    There is no index on processed_at (it would cost every handler's insert), so old rows are
    found by a scan that stops at `batch` matches. Rows are inserted in time order, so the oldest
    sit near the start of the heap and a batch is found early. Deleting by ctid (the rows just
    found) avoids a second lookup through the primary key. Concurrent prunes (several replicas)
    are harmless: a row another one deleted first is simply not counted twice.
    """
    ctid: ColumnClause[Any] = literal_column("ctid")
    oldest = select(ctid).select_from(inbox).where(inbox.c.processed_at < cutoff).limit(batch)
    result = await connection.execute(delete(inbox).where(ctid.in_(oldest)))
    return result.rowcount
