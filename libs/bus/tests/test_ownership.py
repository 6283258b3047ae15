"""Ownership on a real PostgreSQL: one live owner at a time; a silent owner loses it in bounded time
and learns so before acting; its outcome transaction cannot commit after it lost ownership."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import TableClause, column, event, insert, select, table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import ownership
from bus.db import make_engine
from bus.ownership import OwnershipLost

pytestmark = pytest.mark.integration

LEASE_S = 0.6
DEADLINE_S = 20.0


@dataclass
class Db:
    engine: AsyncEngine
    table: TableClause


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    """A table of outcomes in a schema of this test's own."""
    schema = f"ownership_{uuid.uuid4().hex[:8]}"
    engine = make_engine(database_url, pool_size=4)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.execute(text(f'CREATE TABLE "{schema}".outcomes (key text primary key)'))
    try:
        yield Db(engine, table("outcomes", column("key"), schema=schema))
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def _record(owner: ownership.Ownership, db: Db, key: str) -> None:
    """The owner's outcome, written in the owned transaction."""
    async with (await owner.sessionmaker())() as session, session.begin():
        await session.execute(insert(db.table).values(key=key))


async def _recorded(db: Db) -> list[str]:
    async with db.engine.connect() as connection:
        return list((await connection.execute(select(db.table.c.key))).scalars())


async def test_a_second_owner_waits_while_the_first_lives_even_when_it_is_slow(db: Db) -> None:
    key = f"k-{uuid.uuid4().hex}"
    order: list[str] = []
    first_in = asyncio.Event()

    async def first() -> None:
        async with ownership.acquire(db.engine, key, lease_s=LEASE_S) as owner:
            first_in.set()
            await asyncio.sleep(LEASE_S * 4)  # slower than the lease: the heartbeat keeps it
            await owner.ensure()
            order.append("first")
            await _record(owner, db, "first")

    async def second() -> None:
        await first_in.wait()
        async with ownership.acquire(db.engine, key, lease_s=LEASE_S):
            order.append("second")

    await asyncio.wait_for(asyncio.gather(first(), second()), DEADLINE_S)
    assert order == ["first", "second"]
    assert await _recorded(db) == ["first"]


@pytest.mark.parametrize("wakes_up_to", ["act", "commit"])
async def test_a_silent_owner_loses_ownership_and_can_neither_act_nor_commit(
    db: Db, wakes_up_to: str
) -> None:
    key = f"k-{uuid.uuid4().hex}"

    async def frozen_then_woken() -> None:
        async with ownership.acquire(db.engine, key, lease_s=LEASE_S) as stale:
            await stale._stop_heartbeat()  # frozen like a SIGSTOPped worker: silent from now on
            started = time.monotonic()
            async with ownership.acquire(db.engine, key, lease_s=LEASE_S) as successor:
                waited = time.monotonic() - started
                await successor.ensure()
                await _record(successor, db, "successor")
            assert waited >= LEASE_S * 0.9  # the server ended the silent owner's session first
            if wakes_up_to == "act":
                await stale.ensure()  # what a worker calls right before its side effect
            else:
                await _record(stale, db, "stale")

    with pytest.raises((OwnershipLost, DBAPIError)):
        await asyncio.wait_for(frozen_then_woken(), DEADLINE_S)
    assert await _recorded(db) == ["successor"]


async def test_ownership_is_taken_in_one_round_trip(db: Db) -> None:
    """The lease and the lock were two statements, a round trip each, before every dial. (That the
    lease still ends a silent owner's session is the test above.)"""
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with ownership.acquire(db.engine, "one-trip", lease_s=LEASE_S):
            taken = list(statements)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert len(taken) == 1
    assert "idle_in_transaction_session_timeout" in taken[0] and "pg_advisory_xact_lock" in taken[0]
