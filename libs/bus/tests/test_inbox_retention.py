"""Inbox retention on a real PostgreSQL (and, for the background job, a real broker)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import inbox
from bus.db import make_sessionmaker
from bus.runtime import Bus
from bus.settings import BusSettings

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0
CONSUMER = "retention-test"


@dataclass
class Schema:
    engine: AsyncEngine
    outbox: Table
    inbox: Table


@pytest.fixture
async def schema(bus_schema: Any) -> Schema:
    """An outbox and an inbox in a schema of this test's own (conftest's `bus_schema`)."""
    made = await bus_schema("inbox_retention")
    return Schema(made.engine, made.outbox, made.inbox)


async def _insert(schema: Schema, prefix: str, count: int, age: timedelta) -> list[str]:
    """`count` claims processed `age` ago, inserted oldest first like real traffic."""
    now = datetime.now(UTC)
    ids = [f"{prefix}-{i}" for i in range(count)]
    async with schema.engine.begin() as connection:
        await connection.execute(
            insert(schema.inbox),
            [
                {"consumer": CONSUMER, "message_id": mid, "processed_at": now - age + timedelta(seconds=i)}
                for i, mid in enumerate(ids)
            ],
        )
    return ids


async def _remaining(schema: Schema, prefix: str) -> int:
    async with schema.engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(schema.inbox.c.message_id.startswith(f"{prefix}-"))
        )
    return int(count or 0)


def _bus(schema: Schema, values: dict[str, Any] | None = None) -> Bus:
    settings = BusSettings.model_validate(values or {})
    return Bus(
        settings,
        service=f"retention-{uuid.uuid4().hex[:6]}",
        engine=schema.engine,
        outbox_table=schema.outbox,
        inbox_table=schema.inbox,
    )


async def test_prune_deletes_only_rows_older_than_the_cutoff_in_batches(schema: Schema) -> None:
    old = await _insert(schema, "old", 25, timedelta(hours=3))
    recent = await _insert(schema, "recent", 5, timedelta(minutes=30))
    cutoff = datetime.now(UTC) - timedelta(hours=1)

    async with schema.engine.begin() as connection:
        assert await inbox.prune_batch(connection, schema.inbox, cutoff, 10) == 10
    assert await _remaining(schema, "old") == 15  # one batch is bounded

    bus = _bus(schema)
    assert await bus.prune_inbox(cutoff, batch=10) == 15  # batches of 10, 5: until one falls short
    assert await _remaining(schema, "old") == 0
    assert await _remaining(schema, "recent") == 5
    pruned = REGISTRY.get_sample_value(
        "switchboard_rows_pruned_total", {"service": bus.service, "table": "inbox"}
    )
    assert pruned == 15
    assert await bus.prune_inbox(cutoff, batch=10) == 0  # nothing left: one short batch, no error

    # A pruned id is no longer recognised (long after Kafka could redeliver it); a recent one still is.
    sessions = make_sessionmaker(schema.engine)
    async with sessions() as session, session.begin():
        assert await inbox.claim(session, schema.inbox, CONSUMER, old[0]) is True
        assert await inbox.claim(session, schema.inbox, CONSUMER, recent[0]) is False


async def test_the_bus_prunes_in_the_background_while_it_runs(
    schema: Schema, kafka_bootstrap_servers: str, kafka_client_env: dict[str, str]
) -> None:
    await _insert(schema, "old", 7, timedelta(hours=3))
    await _insert(schema, "recent", 3, timedelta(minutes=10))
    bus = _bus(
        schema,
        {
            **kafka_client_env,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
            "BUS_INBOX_RETENTION_HOURS": 1,
            "BUS_RETENTION_INTERVAL_S": 0.2,
        },
    )
    await bus.start()
    try:
        assert bus.inbox_retention_running
        deadline = time.monotonic() + DEADLINE_S
        while await _remaining(schema, "old"):
            assert time.monotonic() < deadline, "the inbox was not pruned"
            await asyncio.sleep(0.05)  # polling with a deadline
        assert await _remaining(schema, "recent") == 3
    finally:
        await bus.stop()
    assert not bus.inbox_retention_running
