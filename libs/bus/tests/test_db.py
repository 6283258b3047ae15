"""Connection pool sizes come from the settings: every replica of every service shares one server's
max_connections, so an operator must be able to shrink them."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.db import make_engine
from bus.settings import BusSettings


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


async def test_a_connection_used_a_moment_ago_is_not_pinged(database_url: str) -> None:
    """Busy services check out connections hundreds of times a second: pinging each (three round
    trips with asyncpg) was ~0.2 ms of CPU a transaction. A busy connection that died anyway fails
    its statement as a disconnect; the pool is then replaced and the next use works."""
    engine = make_engine(database_url, pool_size=1, max_overflow=1, ping_after_idle_s=3600.0)
    other = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        await _terminate(other, first)
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(engine)
        assert failed.value.connection_invalidated
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()
        await other.dispose()
