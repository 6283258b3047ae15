"""`bus.db`: pool sizes come from the settings (every replica of every service shares one server's
max_connections, so an operator must be able to shrink them), and a pooled connection the server
ended is replaced before use, with a ping only for one that sat idle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import metrics
from bus.db import count_work, make_engine
from bus.settings import BusSettings
from devinfra.bus_harness import wait_until


def test_pool_sizes_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "2")
    monkeypatch.setenv("DATABASE_MAX_OVERFLOW", "5")
    settings = BusSettings()
    engine = make_engine(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    assert (engine.pool.size(), engine.pool._max_overflow) == (2, 5)  # type: ignore[attr-defined]


def test_a_pool_needs_at_least_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_SIZE", "0")
    with pytest.raises(ValueError, match="DATABASE_POOL_SIZE"):
        BusSettings()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    """As a server restart or a proxy's idle cut does: the pooled connection dies under the pool
    (the call returns once the backend has exited)."""
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})


async def test_an_idle_connection_that_died_is_pinged_and_replaced_before_use(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=1, ping_after_idle_s=0.0)
    other = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        await _terminate(other, first)
        # The dead connection is found at checkout, not by the statement: this one succeeds.
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
        await other.dispose()


async def test_a_connection_the_server_closed_is_replaced_at_checkout_without_a_ping(
    database_url: str,
) -> None:
    """Used a moment ago, so not pinged; but asyncpg read the server's notice that it ended the
    connection while it sat in the pool, and that is checked at no cost. Before, a busy service
    handed such a connection out: its request failed (a 503 at the API key check, a 500 at a
    webhook, an outcome lost) after every server restart or administrator kill (found by a trial)."""
    engine = make_engine(database_url, pool_size=1, max_overflow=1, ping_after_idle_s=3600.0)
    other = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            first = int(await connection.scalar(text("SELECT pg_backend_pid()")))
            driver = (await connection.get_raw_connection()).driver_connection
        await _terminate(other, first)
        await wait_until(lambda: driver.is_closed(), "asyncpg to read that the server ended it")
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
        await other.dispose()


async def test_only_a_connection_idle_past_the_threshold_is_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy services check out connections hundreds of times a second: pinging each (three round
    trips with asyncpg) cost ~0.2 ms of CPU a transaction (bench/pool_checkout.py)."""
    for after_s, pings in ((3600.0, 0), (0.0, 20)):
        engine = make_engine(database_url, pool_size=1, max_overflow=0, ping_after_idle_s=after_s)
        pinged: list[object] = []
        monkeypatch.setattr(engine.dialect, "do_ping", _counting(engine.dialect.do_ping, pinged))
        try:
            await _backend_pid(engine)  # a new connection: never pinged
            for _ in range(20):
                await _backend_pid(engine)
            assert len(pinged) == pings, (after_s, len(pinged))
        finally:
            await engine.dispose()


def _counting(ping: Callable[[Any], bool], calls: list[object]) -> Callable[[Any], bool]:
    def counted(connection: Any) -> bool:
        calls.append(connection)
        return ping(connection)

    return counted


async def test_statements_and_transactions_are_counted_per_service(database_url: str) -> None:
    engine = make_engine(database_url)
    count_work(engine, "counted")

    def counts() -> tuple[float, float, float]:
        return (
            metrics.DB_STATEMENTS.labels("counted")._value.get(),
            metrics.DB_TRANSACTIONS.labels("counted", "commit")._value.get(),
            metrics.DB_TRANSACTIONS.labels("counted", "rollback")._value.get(),
        )

    try:
        async with engine.begin() as connection:  # one transaction, two statements
            await connection.execute(text("SELECT 1"))
            await connection.execute(text("SELECT 2"))
        assert counts() == (2, 1, 0)
        async with engine.connect() as connection:  # read and left: ends in a rollback
            await connection.execute(text("SELECT 3"))
        assert counts() == (3, 1, 1)
        async with engine.connect() as raw:  # the outbox relay's way: no transaction to count
            connection = await raw.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("SELECT 4"))
            await connection.commit()
        assert counts() == (4, 1, 1)
    finally:
        await engine.dispose()


async def test_an_engine_shared_by_several_buses_is_counted_once(database_url: str) -> None:
    engine = make_engine(database_url)
    count_work(engine, "shared")
    count_work(engine, "shared")  # a second Bus on the same engine
    try:
        before = metrics.DB_STATEMENTS.labels("shared")._value.get()
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        assert metrics.DB_STATEMENTS.labels("shared")._value.get() == before + 1
    finally:
        await engine.dispose()
