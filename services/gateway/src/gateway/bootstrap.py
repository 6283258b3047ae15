"""The only wiring. Tests call `bootstrap()` with their own settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.db import make_engine, make_sessionmaker
from bus.periodic import Periodic
from bus.runtime import Bus
from gateway import handlers
from gateway.auth import AccessService
from gateway.changes import ChangeListener
from gateway.models import inbox, outbox
from gateway.numbers import NumberReader
from gateway.projection import Projection
from gateway.retention import Retention
from gateway.service import GatewayService
from gateway.settings import Settings
from gateway.uow import UnitOfWork
from gateway.waiter import OperationWaiter

_HEALTH_CACHE_S = 10.0


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    bus: Bus
    waiter: OperationWaiter
    changes: ChangeListener
    service: GatewayService
    projection: Projection
    access: AccessService
    http: httpx.AsyncClient
    uow: Callable[[], UnitOfWork]
    retention: Periodic
    numbers: NumberReader
    _health: tuple[float, bool] = field(default=(0.0, False))

    async def elevenlabs_reachable(self) -> bool:
        """Whether ElevenLabs answers our key; cached briefly so /health stays cheap."""
        checked_at, ok = self._health
        if time.monotonic() - checked_at < _HEALTH_CACHE_S:
            return ok
        try:
            response = await self.http.get(
                f"{self.settings.elevenlabs_base_url.rstrip('/')}/v1/convai/agents",
                params={"page_size": 1},
                headers={"xi-api-key": self.settings.elevenlabs_api_key},
            )
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        self._health = (time.monotonic(), ok)
        return ok


def bootstrap(settings: Settings | None = None) -> Container:
    settings = settings or Settings()
    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    sessions = make_sessionmaker(engine)
    bus = Bus(settings, service="gateway", engine=engine, outbox_table=outbox, inbox_table=inbox)
    waiter = OperationWaiter(settings.database_url)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessions, bus)

    service = GatewayService(settings, uow, waiter)
    projection = Projection(uow)
    handlers.subscribe(bus, projection)
    bus.on_relay_failure(projection.relay_failed)
    return Container(
        settings=settings,
        engine=engine,
        bus=bus,
        waiter=waiter,
        changes=ChangeListener(settings.database_url),
        service=service,
        projection=projection,
        access=AccessService(settings, uow),
        http=httpx.AsyncClient(timeout=5.0),
        uow=uow,
        retention=Periodic(
            "gateway.retention", settings.bus_retention_interval_s, Retention(settings, uow).prune_expired
        ),
        numbers=NumberReader(settings.batch_check_processes),
    )
