"""The composition root: the only place that builds engines, clients, the transport and the bus."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import migrate
from bus.db import make_engine, make_sessionmaker
from bus.outbound import OutboundClient, parse_allow_hosts
from bus.periodic import Periodic
from bus.runtime import Bus
from contracts import topics
from notifier import handlers
from notifier.models import CONSUMER, inbox, outbox
from notifier.service import NotifierService
from notifier.settings import Settings
from notifier.transports import Transport, make_transport
from notifier.uow import UnitOfWork
from notifier.webhook_service import Dispatcher, WebhookService

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
    webhooks: WebhookService
    dispatcher: Dispatcher
    webhook_retention: Periodic
    owns_http: bool

    async def start(self) -> None:
        await self.bus.start(
            [
                topics.NOTIFIER_COMMANDS,
                topics.NOTIFIER_EVENTS,
                topics.TELEPHONY_EVENTS,
                topics.CAMPAIGN_EVENTS,
            ]
        )
        self.dispatcher.start()
        self.webhook_retention.start()

    async def stop(self) -> None:
        """Stop intake (in-flight handlers and sends finish), then release connections."""
        await self.webhook_retention.stop()
        await self.dispatcher.stop()
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
    webhook_clock: Callable[[], datetime] | None = None,
) -> Container:
    """`webhook_clock` replaces the webhook rules' clock (tests of the retry and disable rules)."""
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
    outbound = OutboundClient(
        http,
        allow_http=False,  # per request: http only to hosts on OUTBOUND_ALLOW_HOSTS
        allow_hosts=parse_allow_hosts(settings.outbound_allow_hosts),
        max_response_bytes=settings.webhooks_max_response_bytes,
    )
    webhooks = WebhookService(lambda: UnitOfWork(sessionmaker, bus), outbound, settings, clock=webhook_clock)
    dispatcher = Dispatcher(webhooks, settings)
    handlers.register(bus, service, webhooks)
    return Container(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        bus=bus,
        http=http,
        transport=transport,
        service=service,
        webhooks=webhooks,
        dispatcher=dispatcher,
        webhook_retention=Periodic(
            "notifier.webhook_retention", settings.bus_retention_interval_s, webhooks.prune
        ),
        owns_http=http_client is None,
    )
