"""Engine and session factory: one session pattern for every service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An engine keeping up to ``pool_size`` idle connections and opening ``max_overflow`` more
    under load. PostgreSQL's own cap (max_connections, 100 by default) is shared by every replica
    of every service on the server, so these are settings (DATABASE_POOL_SIZE/MAX_OVERFLOW).
    Statement parameters (a customer's e-mail, a token) stay out of the errors it raises, hence out
    of logs and dead-letter headers (see `bus.logs.describe_error`)."""
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True, hide_parameters=True
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def copy_rows(
    session: AsyncSession, table: Table, columns: Sequence[str], records: Iterable[Sequence[Any]]
) -> None:
    """Insert `records` (values in `columns`' order, JSON columns as text) into `table` with one
    binary COPY on the session's own connection, so in its transaction. For bulk inserts: an
    INSERT of thousands of rows has SQLAlchemy compile a bind parameter per cell (and past 32,767
    of them asyncpg refuses it). No ON CONFLICT: the rows must be new, or the COPY fails whole."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        table.name, schema_name=table.schema, columns=list(columns), records=records
    )
