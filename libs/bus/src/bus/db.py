"""Engine and session factory: one session pattern for every service."""

from __future__ import annotations

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
