"""The composition root: the only place that builds engines, clients and the bus."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import migrate
from bus.db import make_engine, make_sessionmaker
from bus.outbound import OutboundClient
from bus.periodic import Periodic
from bus.runtime import Bus
from contracts import topics
from elevenlabs_client import ElevenLabsClient
from tool_webhooks import handlers
from tool_webhooks.call_control import CallControl
from tool_webhooks.models import CONSUMER, inbox, outbox
from tool_webhooks.service import ToolService, WebhookService
from tool_webhooks.settings import Settings
from tool_webhooks.stores import StoreClient
from tool_webhooks.uow import UnitOfWork

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TOPICS = [
    topics.WEBHOOK_COMMANDS,
    topics.WEBHOOK_EVENTS,
    topics.TELEPHONY_EVENTS,
    topics.PROVISIONING_EVENTS,
    topics.NOTIFIER_COMMANDS,
    topics.CAMPAIGN_COMMANDS,
]


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    http: httpx.AsyncClient
    elevenlabs: ElevenLabsClient
    service: WebhookService
    tools: ToolService
    calls: CallControl
    store_http: httpx.AsyncClient
    owns_http: bool
    retention: Periodic | None

    async def start(self) -> None:
        await self.bus.start(TOPICS)
        if self.retention is not None:
            self.retention.start()

    async def stop(self) -> None:
        """Stop intake (in-flight handlers finish), then release connections."""
        if self.retention is not None:
            await self.retention.stop()
        await self.bus.stop()
        await self.close()

    async def close(self) -> None:
        """Release connections (for one-shot use without starting the bus, e.g. the CLI)."""
        if self.owns_http:
            await self.http.aclose()
        await self.store_http.aclose()
        await self.engine.dispose()


def run_migrations(settings: Settings) -> None:
    """Bring the `tool_webhooks` schema to head (blocking; call via a thread from async code)."""
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
    elevenlabs = ElevenLabsClient(
        http,
        base_url=settings.elevenlabs_base_url,
        api_key=settings.elevenlabs_api_key.get_secret_value(),
        timeout_s=settings.upstream_timeout_s,
        max_retries=settings.upstream_max_retries,
    )
    service = WebhookService(lambda: UnitOfWork(sessionmaker, bus), elevenlabs, settings)
    # Stores get their own client: never redirects, never reads proxy settings from the environment
    # (the SSRF guard must see the real destination), timeouts set per request from the budget.
    store_http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
    outbound = OutboundClient(
        store_http,
        allow_http=settings.allow_http_stores,
        allow_hosts=settings.outbound_allowlist(),
        max_response_bytes=settings.outbound_max_response_bytes,
    )
    tools = ToolService(
        lambda: UnitOfWork(sessionmaker, bus),
        StoreClient(outbound, shopify_api_version=settings.shopify_api_version),
        settings,
    )
    calls = CallControl(lambda: UnitOfWork(sessionmaker, bus), settings)
    handlers.register(bus, service, tools)
    return Container(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        bus=bus,
        http=http,
        elevenlabs=elevenlabs,
        service=service,
        tools=tools,
        calls=calls,
        store_http=store_http,
        owns_http=http_client is None,
        retention=Periodic("tool_webhooks.retention", settings.bus_retention_interval_s, tools.prune_expired)
        if settings.conversation_retention_hours
        else None,
    )
