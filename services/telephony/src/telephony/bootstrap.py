"""The composition root: the only place that builds engines, clients and the bus."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import migrate, ownership
from bus.db import make_engine, make_sessionmaker
from bus.ledger import CommandRunner, Fencing
from bus.runtime import Bus
from elevenlabs_client import ElevenLabsClient
from telephony import handlers
from telephony.models import CONSUMER, inbox, outbox
from telephony.service import TelephonyService
from telephony.settings import Settings
from telephony.uow import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    http: httpx.AsyncClient
    elevenlabs: ElevenLabsClient
    service: TelephonyService
    owns_http: bool
    reconcile: bool = True
    _reconciler: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        await self.bus.start()
        if self.reconcile:
            self._reconciler = asyncio.create_task(
                self.service.reconcile_forever(), name="telephony-reconcile"
            )

    async def stop(self) -> None:
        """Stop reconciliation and intake (in-flight handlers finish), then release connections."""
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
            self._reconciler = None
        await self.bus.stop()
        if self.owns_http:
            await self.http.aclose()
        await self.engine.dispose()


def run_migrations(settings: Settings) -> None:
    """Bring the `telephony` schema to head (blocking; call via a thread from async code)."""
    migrate.upgrade(MIGRATIONS_DIR, settings.database_url)


def bootstrap(
    settings: Settings | None = None,
    *,
    http_client: httpx.AsyncClient | None = None,
    reconcile: bool = True,
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
    elevenlabs = ElevenLabsClient.from_settings(http, settings)
    # Outbound-call POSTs are never retried by the client (see TelephonyService._dial).
    dialer = ElevenLabsClient.from_settings(http, settings, max_retries=0)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessionmaker, bus)

    # The lock key is the one workers used before the ledger had its home in bus.ledger, so both
    # generations fence each other while a deployment rolls.
    fencing = Fencing(
        acquire=lambda message_id: ownership.acquire(
            engine, f"telephony:attempt:{message_id}", lease_s=settings.owner_timeout_s
        ),
        scope=lambda owned: UnitOfWork(owned, bus),
    )
    service = TelephonyService(
        uow,
        elevenlabs,
        dialer,
        settings,
        commands=CommandRunner(uow, service="telephony", fencing=fencing),
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
        reconcile=reconcile,
    )
