"""Connection pool sizes come from the settings: every replica of every service shares one server's
max_connections, so an operator must be able to shrink them."""

from __future__ import annotations

import pytest

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
