"""Fixtures shared by the bus runtime's tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import MetaData, Table, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.db import make_engine
from bus.tables import make_bus_tables


@dataclass
class BusSchema:
    """A service's outbox and inbox in a schema of a test's own, and an engine of its own."""

    name: str
    engine: AsyncEngine
    outbox: Table
    inbox: Table


MakeBusSchema = Callable[..., Awaitable[BusSchema]]


@pytest.fixture
async def bus_schema(database_url: str) -> AsyncIterator[MakeBusSchema]:
    """`await bus_schema(prefix, pool_size=2)`: a new schema named after `prefix`, dropped (and
    its engine disposed) when the test ends."""
    made: list[BusSchema] = []

    async def make(prefix: str, *, pool_size: int = 2) -> BusSchema:
        name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        outbox, inbox = make_bus_tables(MetaData(schema=name))
        engine = make_engine(database_url, pool_size=pool_size)
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{name}"'))
            await connection.run_sync(outbox.metadata.create_all)
        made.append(BusSchema(name, engine, outbox, inbox))
        return made[-1]

    try:
        yield make
    finally:
        for schema in made:
            async with schema.engine.begin() as connection:
                await connection.execute(text(f'DROP SCHEMA "{schema.name}" CASCADE'))
            await schema.engine.dispose()
