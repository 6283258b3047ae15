"""Outbox rows queued in a transaction (`bus.queued`) on the real PostgreSQL: one INSERT at
COMMIT, in the order queued, nothing after a rollback, the relay woken, and rows equal to the ones
faststream-outbox's own `publish` writes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from faststream_outbox.client import _OutboxInserter
from sqlalchemy import Table, event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import queued
from bus.db import make_sessionmaker
from bus.runtime import Bus
from bus.settings import BusSettings
from contracts.base import Command

pytestmark = pytest.mark.integration


class Tick(Command):
    type: Literal["test.tick"] = "test.tick"
    n: int = 0


@dataclass
class Env:
    bus: Bus
    outbox: Table
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    inserts: list[int]  # rows per INSERT into the outbox, as sent to PostgreSQL

    async def rows(self) -> list[Any]:
        async with self.engine.connect() as connection:
            return list(await connection.execute(select(self.outbox).order_by(self.outbox.c.id)))

    def ticks(self, rows: list[Any]) -> list[int]:
        return [Tick.model_validate_json(row.payload).n for row in rows]


@pytest.fixture
async def env(bus_schema: Any) -> Env:
    made = await bus_schema("queued")
    schema, engine, outbox, inbox = made.name, made.engine, made.outbox, made.inbox
    # Queueing touches PostgreSQL only: the bus is never started.
    settings = BusSettings.model_validate({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"})
    bus = Bus(settings, service="queued-test", engine=engine, outbox_table=outbox, inbox_table=inbox)
    inserts: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.startswith(f"INSERT INTO {schema}.outbox"):
            inserts.append(statement.count("$") // 3 if "VALUES" in statement else 1)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    return Env(bus, outbox, engine, make_sessionmaker(engine), inserts)


async def test_rows_queued_in_a_transaction_are_one_insert_at_its_commit_in_order(env: Env) -> None:
    """A transaction that announces several events paid one INSERT (and round trip) per message."""
    notified: asyncio.Queue[str] = asyncio.Queue()
    async with env.engine.connect() as listener:
        raw = (await listener.get_raw_connection()).driver_connection
        channel = f"outbox_{env.outbox.name}"
        assert _OutboxInserter(env.outbox)._channel == channel  # the library's relay listens here
        await raw.add_listener(channel, lambda *args: notified.put_nowait(args[3]))
        async with env.sessions.begin() as session:
            for n in range(5):
                await env.bus.publish_later(session, "ticks", Tick(n=n), key="k")
            assert queued.pending(session) == 5
            assert env.inserts == [] and await env.rows() == []  # nothing written before COMMIT
        assert env.inserts == [5]  # one INSERT of five rows
        rows = await env.rows()
        assert env.ticks(rows) == [0, 1, 2, 3, 4]
        assert {row.queue for row in rows} == {env.bus._relay_queue}
        assert await asyncio.wait_for(notified.get(), 10) == env.bus._relay_queue


async def test_a_transaction_that_does_not_commit_writes_none_of_its_rows(env: Env) -> None:
    async def failing_use_case() -> None:
        async with env.sessions.begin() as session:
            await env.bus.publish_later(session, "ticks", Tick(n=1))
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        await failing_use_case()
    session = env.sessions()
    await session.begin()
    await env.bus.publish_later(session, "ticks", Tick(n=2))
    await session.close()  # closed without COMMIT
    # The same session, a new transaction: only its own row, none left from the one before.
    await env.bus.publish_later(session, "ticks", Tick(n=3))
    await session.commit()
    await session.close()
    assert env.ticks(await env.rows()) == [3]


async def test_a_replaceable_row_keeps_its_place_among_queued_ones(env: Env) -> None:
    """The gateway's submission: its command is replaced once its followers are queued; it must
    still be relayed after what was queued before it and before what follows."""
    async with env.sessions.begin() as session:
        await env.bus.publish_later(session, "ticks", Tick(n=1))
        row_id = await env.bus.publish_replaceable(session, "ticks", Tick(n=2))
        await env.bus.publish_later(session, "ticks", Tick(n=3))
        await env.bus.replace_queued(session, row_id, "ticks", Tick(n=20))
    assert env.ticks(await env.rows()) == [1, 20, 3]


async def test_queued_rows_are_the_ones_the_library_writes(env: Env) -> None:
    """Same queue, payload and headers as faststream-outbox's `publish` (the relay reads them)."""
    message = Tick(n=7, correlation_id="corr-1")
    async with env.sessions.begin() as session:
        await env.bus.publish_replaceable(session, "ticks", message, key="k")  # the library's INSERT
        await env.bus.publish_later(session, "ticks", message, key="k")
        await env.bus.publish_later(session, "ticks", Tick(n=8), key="k")  # no correlation id
    library, ours, generated = await env.rows()
    assert (ours.queue, ours.payload, ours.headers) == (library.queue, library.payload, library.headers)
    assert generated.headers["correlation_id"]  # the library always sets one
    assert ours.next_attempt_at is not None and ours.attempts_count == 0


async def test_a_session_that_is_not_a_bus_session_writes_at_once(env: Env) -> None:
    async with AsyncSession(env.engine) as session, session.begin():
        await env.bus.publish_later(session, "ticks", Tick(n=1))
        count = await session.scalar(select(func.count()).select_from(env.outbox))
        assert count == 1  # written in the transaction, not left for a COMMIT hook it lacks
    assert env.ticks(await env.rows()) == [1]


async def test_rows_queued_before_any_transaction_go_with_the_session_s_close(env: Env) -> None:
    """Queueing begins the transaction (as the INSERT did): rows left by a session that is closed
    or rolled back were written by its next COMMIT."""
    session = env.sessions()
    await env.bus.publish_later(session, "ticks", Tick(n=1))
    await session.close()
    await env.bus.publish_later(session, "ticks", Tick(n=2))
    await session.rollback()
    await env.bus.publish_later(session, "ticks", Tick(n=3))
    await session.commit()
    await session.close()
    assert env.ticks(await env.rows()) == [3]


async def test_savepoints_are_refused_on_a_session_with_queued_rows(env: Env) -> None:
    """A savepoint's commit fires `before_commit` too: rows written then would be lost with a
    rollback of the savepoint around them, so neither order is allowed."""
    async with env.sessions() as session:
        await session.begin()
        await env.bus.publish_later(session, "ticks", Tick(n=1))
        with pytest.raises(RuntimeError, match="savepoint"):
            await session.begin_nested()
    async with env.sessions() as session:
        await session.begin()
        await session.begin_nested()
        with pytest.raises(RuntimeError, match="savepoint"):
            await env.bus.publish_later(session, "ticks", Tick(n=2))
    assert await env.rows() == []


class Note(Command):
    type: Literal["test.note"] = "test.note"
    text: str


async def test_rows_past_the_flush_size_are_written_at_once_in_the_transaction(env: Env) -> None:
    """A submission's chunks (~20 MB for 100,000 recipients) are not all held until COMMIT."""
    big = "x" * (queued.FLUSH_BYTES // 3 + 1)
    async with env.sessions.begin() as session:
        for n in range(3):
            await env.bus.publish_later(session, "notes", Note(text=f"{n}{big}"))
        assert queued.pending(session) == 0  # written, in this transaction
        assert await session.scalar(select(func.count()).select_from(env.outbox)) == 3
        await env.bus.publish_later(session, "notes", Note(text="last"))
        assert queued.pending(session) == 1
        assert await env.rows() == []  # none committed yet
    rows = await env.rows()
    assert [Note.model_validate_json(row.payload).text[:4] for row in rows] == [
        "0xxx",
        "1xxx",
        "2xxx",
        "last",
    ]
    assert env.inserts == [3, 1]
