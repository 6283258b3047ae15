"""Engine and session factory: one session pattern for every service."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bus import metrics
from bus.queued import BusSession

#: A pooled connection unused this long is pinged before it is handed out (see `make_engine`).
PING_AFTER_IDLE_S = 5.0


def make_engine(
    url: str, *, pool_size: int = 10, max_overflow: int = 10, ping_after_idle_s: float = PING_AFTER_IDLE_S
) -> AsyncEngine:
    """An engine keeping up to ``pool_size`` idle connections and opening ``max_overflow`` more
    under load. PostgreSQL's own cap (max_connections, 100 by default) is shared by every replica
    of every service on the server, so these are settings (DATABASE_POOL_SIZE/MAX_OVERFLOW).
    Statement parameters (a customer's e-mail, a token) stay out of the errors it raises, hence out
    of logs and dead-letter headers (see `bus.logs.describe_error`).

    A connection the driver already knows is closed (the server ended it: a restart, an
    administrator, an idle cut; asyncpg reads the server's notice or the socket's end while the
    connection sits in the pool) is replaced at checkout, without a round trip. One that sat in the
    pool for ``ping_after_idle_s`` seconds or more is also pinged, and replaced if the ping fails (a
    cut nobody told the client about). Not every checkout is pinged, as SQLAlchemy's
    ``pool_pre_ping`` does: asyncpg's ping is three round trips (BEGIN, ``;``, ROLLBACK), ~0.2 ms of
    CPU between client and server, and a busy service checks out connections hundreds of times a
    second that were in use a moment ago (bench/README, issue 17). A connection that dies while in
    use, or silently within the idle time, fails its statement as a disconnect: SQLAlchemy then
    replaces every connection of the pool (`database_unavailable` tells such errors apart)."""
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=max_overflow, hide_parameters=True)
    _ping_idle_connections(engine, ping_after_idle_s)
    return engine


def _ping_idle_connections(engine: AsyncEngine, after_s: float) -> None:
    # SQLAlchemy's documented hook for custom pessimistic disconnect handling: a checkout listener
    # that raises DisconnectionError has the pool discard the connection and hand out a fresh one.
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():  # asyncpg's own flag: no round trip
            raise DisconnectionError("the server closed this pooled connection")
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < after_s:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(f"idle connection failed its ping: {type(exc).__name__}") from exc


_counted: weakref.WeakSet[Any] = weakref.WeakSet()


def count_work(engine: AsyncEngine, service: str) -> None:
    """Count what `engine` asks of PostgreSQL, for `service`: every statement sent
    (`switchboard_db_statements_total`) and every transaction ended
    (`switchboard_db_transactions_total`, by commit or rollback; autocommit work, such as the
    outbox relay's claims, has none). Per unit of business work (a campaign call) they are what
    bench/campaigns.py prints, as they do not depend on how fast the machine is; and a rate that
    rises out of step with the traffic is a regression an operator can see."""
    if engine.sync_engine in _counted:  # one count per engine, however many buses share it
        return
    _counted.add(engine.sync_engine)
    statements = metrics.DB_STATEMENTS.labels(service)
    commits = metrics.DB_TRANSACTIONS.labels(service, "commit")
    rollbacks = metrics.DB_TRANSACTIONS.labels(service, "rollback")

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def executing(*_: Any) -> None:
        statements.inc()

    @event.listens_for(engine.sync_engine, "commit")
    def committed(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            commits.inc()

    @event.listens_for(engine.sync_engine, "rollback")
    def rolled_back(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            rollbacks.inc()


def database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be used rather than refused the work: the
    connection was lost (SQLAlchemy's `connection_invalidated`, a failed checkout) or could not be
    made, or no pooled connection came free in time. Such a failure is worth retrying shortly (an
    HTTP 503, a warning), unlike a statement the database refused."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, DisconnectionError | PoolTimeout | ConnectionError)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose queued outbox rows are written at COMMIT (`bus.queued`)."""
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=BusSession)


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
