"""The composition root: the only place that builds engines, clients and the bus."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import migrate
from bus.db import make_engine, make_sessionmaker
from bus.ledger import CommandRunner
from bus.runtime import Bus
from elevenlabs_client import ElevenLabsClient
from provisioning import handlers
from provisioning.models import CONSUMER, inbox, outbox
from provisioning.service import ProvisioningService
from provisioning.settings import Settings
from provisioning.uow import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    http: httpx.AsyncClient
    elevenlabs: ElevenLabsClient
    service: ProvisioningService
    owns_http: bool

    async def start(self) -> None:
        await self.bus.start()

    async def stop(self) -> None:
        """Stop intake (in-flight handlers finish), then release connections."""
        await self.bus.stop()
        if self.owns_http:
            await self.http.aclose()
        await self.engine.dispose()


def run_migrations(settings: Settings) -> None:
    """Bring the `provisioning` schema to head (blocking; call via a thread from async code)."""
    migrate.upgrade(MIGRATIONS_DIR, settings.database_url)


def bootstrap(settings: Settings | None = None, *, http_client: httpx.AsyncClient | None = None) -> Container:
    settings = settings or Settings()
    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    sessionmaker = make_sessionmaker(engine)
    bus = Bus(settings, service=CONSUMER, engine=engine, outbox_table=outbox, inbox_table=inbox)
    http = http_client or httpx.AsyncClient()
    elevenlabs = ElevenLabsClient.from_settings(http, settings)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessionmaker, bus)

    service = ProvisioningService(
        uow, elevenlabs, http, settings, commands=CommandRunner(uow, service="provisioning")
    )
    handlers.register(bus, service)
    return Container(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        bus=bus,
        http=http,
        elevenlabs=elevenlabs,
        service=service,
        owns_http=http_client is None,
    )
