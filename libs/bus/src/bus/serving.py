"""The process of a service whose work comes from the bus (campaigns, provisioning, telephony,
notifier): its ASGI app and its `python -m <service>` entry point, one of each for all of them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.heap import freeze_startup_heap
from bus.logs import configure_logging
from bus.ops import ops_router
from bus.runtime import Bus
from bus.tracing import setup_tracing


class ServedSettings(Protocol):
    """What serving needs of a service's settings (its own class, built on `BusSettings`)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def log_level(self) -> str: ...

    @property
    def log_json(self) -> bool: ...

    @property
    def otel_traces_exporter(self) -> str: ...


S = TypeVar("S", bound=ServedSettings)
S_co = TypeVar("S_co", bound=ServedSettings, covariant=True)


class Box(Protocol[S_co]):
    """A service's bootstrapped container (its `bootstrap.Container`)."""

    @property
    def settings(self) -> S_co: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def engine(self) -> AsyncEngine: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def service_app(
    name: str,
    box: Box[S],
    *,
    migrate: Callable[[S], None] | None,
    registries: Sequence[CollectorRegistry] = (),
) -> FastAPI:
    """The app `switchboard-<name>`: for its lifetime `box` runs (after `migrate(settings)`, in a
    thread, when given); it serves `/health`, `/health/live`, `/health/ready` and `/metrics` (`bus.ops`)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate is not None:
            await asyncio.to_thread(migrate, box.settings)
        await box.start()
        freeze_startup_heap()
        try:
            yield
        finally:
            await box.stop()

    app = FastAPI(title=f"switchboard-{name}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.include_router(ops_router(box.bus, box.engine, registries=registries))
    return app


def serve(
    name: str,
    argv: list[str],
    settings: S,
    *,
    migrate: Callable[[S], None],
    app: Callable[[S], FastAPI],
) -> int:
    """`python -m <name>` migrates, then serves `app(settings)` (which must not migrate again);
    `python -m <name> migrate` only migrates. Returns the exit status (2: a usage error)."""
    configure_logging(name, settings.log_level, json=settings.log_json)
    setup_tracing(name, settings.otel_traces_exporter)
    if argv[:1] == ["migrate"]:
        migrate(settings)
        return 0
    if argv:
        print(f"usage: python -m {name} [migrate]", file=sys.stderr)
        return 2
    migrate(settings)
    # uvicorn turns SIGTERM into a graceful shutdown; the lifespan then stops the bus, which lets
    # in-flight handlers finish before offsets are committed.
    uvicorn.run(app(settings), host=settings.host, port=settings.port, log_config=None, lifespan="on")
    return 0
