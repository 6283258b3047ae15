"""The composition root: the only place that builds the engine, the bus, the use cases' dependencies
and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import migrate
from bus.db import make_engine, make_sessionmaker
from bus.runtime import Bus
from campaigns import handlers
from campaigns.context import Deps, utc_now
from campaigns.models import CONSUMER, inbox, outbox
from campaigns.scheduling import Scheduler
from campaigns.settings import Settings
from campaigns.uow import UnitOfWork
from contracts import topics
from contracts.quiet_hours import RULES_FILE, load_rules

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
TOPICS = [
    topics.CAMPAIGN_COMMANDS,
    topics.CAMPAIGN_EVENTS,
    topics.TELEPHONY_COMMANDS,
    topics.TELEPHONY_EVENTS,
]


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bus: Bus
    deps: Deps
    scheduler: Scheduler
    schedule: bool = True
    _scheduler: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> None:
        await self.bus.start(TOPICS)
        if self.schedule:
            self._scheduler = asyncio.create_task(self.scheduler.run_forever(), name="campaigns-scheduler")

    async def stop(self) -> None:
        """Stop the scheduler and intake (in-flight handlers finish), then release connections."""
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
            self._scheduler = None
        await self.bus.stop()
        await self.engine.dispose()


def run_migrations(settings: Settings) -> None:
    """Bring the `campaigns` schema to head (blocking; call via a thread from async code)."""
    migrate.upgrade(MIGRATIONS_DIR, settings.database_url)


def make_deps(
    settings: Settings, uow: Callable[[], UnitOfWork], clock: Callable[[], datetime] = utc_now
) -> Deps:
    """The use cases' dependencies: `uow` opens a unit of work (a fake one in unit tests), `clock`
    the time they read (a fixed one in unit tests)."""
    return Deps(
        uow=uow,
        settings=settings,
        quiet_hours=load_rules(settings.quiet_hours_file or RULES_FILE),
        clock=clock,
    )


def bootstrap(settings: Settings | None = None, *, schedule: bool = True) -> Container:
    settings = settings or Settings()
    engine = make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    sessionmaker = make_sessionmaker(engine)
    bus = Bus(settings, service=CONSUMER, engine=engine, outbox_table=outbox, inbox_table=inbox)
    deps = make_deps(settings, lambda: UnitOfWork(sessionmaker, bus))
    handlers.register(bus, deps)
    return Container(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        bus=bus,
        deps=deps,
        scheduler=Scheduler(deps),
        schedule=schedule,
    )
