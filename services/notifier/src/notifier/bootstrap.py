"""The composition root: the only place that builds engines, clients, the transport and the bus."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import migrate
from bus.db import make_engine, make_sessionmaker
from bus.runtime import Bus
from contracts import topics
from notifier import handlers
from notifier.models import CONSUMER, inbox, outbox
from notifier.service import NotifierService
from notifier.settings import Settings
from notifier.transports import Transport, make_transport
from notifier.uow import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    http: httpx.AsyncClient
    transport: Transport
    service: NotifierService
    owns_http: bool

    async def start(self) -> None:
        await self.bus.start([topics.NOTIFIER_COMMANDS, topics.NOTIFIER_EVENTS])

    async def stop(self) -> None:
        """Stop intake (in-flight handlers finish), then release connections."""
        await self.bus.stop()
        if self.owns_http:
            await self.http.aclose()
        await self.engine.dispose()


def run_migrations(settings: Settings) -> None:
    """Bring the `notifier` schema to head (blocking; call via a thread from async code)."""
    migrate.upgrade(MIGRATIONS_DIR, settings.database_url)


def bootstrap(
    settings: Settings | None = None,
    *,
    http_client: httpx.AsyncClient | None = None,
    transport: Transport | None = None,
) -> Container:
    settings = settings or Settings()
    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    sessionmaker = make_sessionmaker(engine)
    bus = Bus(settings, service=CONSUMER, engine=engine, outbox_table=outbox, inbox_table=inbox)
    http = http_client or httpx.AsyncClient()
    transport = transport or make_transport(settings, http)
    service = NotifierService(lambda: UnitOfWork(sessionmaker, bus), transport, settings)
    handlers.register(bus, service)
    return Container(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        bus=bus,
        http=http,
        transport=transport,
        service=service,
        owns_http=http_client is None,
    )
