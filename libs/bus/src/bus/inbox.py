"""Idempotent consumption: claim a message id inside the handler's transaction; prune old claims."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, delete, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.expression import ColumnClause


async def claim(session: AsyncSession, inbox: Table, consumer: str, message_id: str) -> bool:
    """True the first time `consumer` sees `message_id`; False for a redelivery.

    Runs in the caller's transaction, so a rollback forgets the claim together with the work.
    """
    result = await session.execute(
        insert(inbox)
        .values(consumer=consumer, message_id=message_id)
        .on_conflict_do_nothing()
        .returning(inbox.c.message_id)
    )
    return result.first() is not None


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
