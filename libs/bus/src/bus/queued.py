"""Outbox rows queued in a transaction, written together in one INSERT just before its COMMIT.

faststream-outbox writes each published message with its own INSERT (one round trip, and the
library's encode and metrics pass, per message). A transaction that announces several events (a
campaign's dial: the command, the recipient's change, the campaign's progress) or a batch of
messages handled in one transaction (`bus.batch`) paid that once per message. Here the rows wait
in the session and are written by one multi-row INSERT from the session's `before_commit` event,
so they commit with the transaction's other writes or not at all (a rollback, or a session closed
without COMMIT, drops them).

The rows are the library's own (`faststream_outbox.make_outbox_table`: queue, payload, headers;
the rest are server defaults) with the headers its `publish` adds (a `correlation_id`, always),
and the INSERT wakes the relay with `pg_notify` on the library's channel, in its RETURNING, as
the library's single-row INSERT does. `tests/test_queued.py` pins both against the installed
release.

Only sessions of `BusSession` (every sessionmaker `bus.db` and `bus.ownership` build) defer: any
other session gets its row written at once, so nothing can be queued on a session whose commit
would not write it. Queueing begins the session's transaction if none is open (as the INSERT did),
so a close or rollback always drops what was queued. Rows past `FLUSH_BYTES` of payload are written
at once, still in the transaction (a submission's 100,000 recipients are ~20 MB of chunks).
Savepoints (`begin_nested`) are refused on a session holding queued rows, and queueing inside one
is refused: a savepoint's own commit fires `before_commit` too, and rows written then would go
with a rollback of the savepoint around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faststream.message import gen_cor_id
from sqlalchemy import Insert, Table, event, func, insert, literal
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_INFO_KEY = "bus.queued_outbox_rows"
#: Queued payload bytes past which the rows are written at once (still in the transaction).
FLUSH_BYTES = 1_048_576


class BusSession(Session):
    """The services' session class: what `queue` left in it is written just before its COMMIT."""


@dataclass
class OutboxWriter:
    """The INSERT for one outbox table: `queue, payload, headers` per row, NOTIFY in RETURNING."""

    table: Table
    statement: Insert = field(init=False)

    def __post_init__(self) -> None:
        # faststream-outbox's LISTEN channel for this table (`_OutboxInserter._channel`).
        channel = f"outbox_{self.table.name}"
        self.statement = insert(self.table).returning(func.pg_notify(literal(channel), self.table.c.queue))

    @staticmethod
    def row(
        queue: str, payload: bytes, headers: dict[str, str], correlation_id: str | None
    ) -> dict[str, Any]:
        """The row the library's `publish` would write (it adds the correlation id, or a new one)."""
        headers = dict(headers)
        headers["correlation_id"] = correlation_id or headers.get("correlation_id") or gen_cor_id()
        return {"queue": queue, "payload": payload, "headers": headers}


@dataclass
class _Queued:
    writer: OutboxWriter
    rows: list[dict[str, Any]]
    size: int = 0  # payload bytes


def defers(session: AsyncSession) -> bool:
    """Whether rows queued on `session` are written at its COMMIT (a `BusSession`)."""
    return isinstance(session.sync_session, BusSession)


async def queue(session: AsyncSession, writer: OutboxWriter, row: dict[str, Any]) -> None:
    """Queue `row` (see `OutboxWriter.row`) in `session`'s transaction: written at its COMMIT,
    after every row queued before it. On a session that does not defer, written now."""
    if session.in_nested_transaction():
        raise RuntimeError("outbox rows cannot be queued inside a savepoint (bus.queued)")
    if not session.in_transaction():
        await session.connection()  # begun now, so a close or rollback drops the row with it
    queued: _Queued | None = session.info.get(_INFO_KEY)
    if queued is not None and queued.writer is not writer:
        await flush(session)  # another table: keep the order written
        queued = None
    if not defers(session):
        await session.execute(writer.statement, [row])
        return
    if queued is None:
        queued = session.info[_INFO_KEY] = _Queued(writer, [])
    queued.rows.append(row)
    queued.size += len(row["payload"])
    if queued.size >= FLUSH_BYTES:
        await flush(session)


async def flush(session: AsyncSession) -> None:
    """Write what `session` holds queued now (before a row written at once must follow it)."""
    queued: _Queued | None = session.info.get(_INFO_KEY)
    if queued is not None:
        await session.execute(queued.writer.statement, queued.rows)
        # Only once written: a write that failed before reaching PostgreSQL leaves them queued.
        session.info.pop(_INFO_KEY, None)


def pending(session: AsyncSession) -> int:
    """How many rows `session` holds queued."""
    queued: _Queued | None = session.info.get(_INFO_KEY)
    return 0 if queued is None else len(queued.rows)


@event.listens_for(BusSession, "before_commit")
def _write_queued(session: Session) -> None:
    # Runs inside AsyncSession.commit's greenlet, so the sync execute reaches asyncpg. One
    # statement: SQLAlchemy's insertmanyvalues renders the rows as one multi-row INSERT.
    queued: _Queued | None = session.info.get(_INFO_KEY)
    if queued is not None:
        session.execute(queued.writer.statement, queued.rows)
        session.info.pop(_INFO_KEY, None)


@event.listens_for(BusSession, "after_transaction_create")
def _refuse_savepoints(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested and _INFO_KEY in session.info:
        raise RuntimeError("a savepoint on a session holding queued outbox rows (bus.queued)")


@event.listens_for(BusSession, "after_transaction_end")
def _drop_queued(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed without COMMIT: the rows go with it
        session.info.pop(_INFO_KEY, None)
