"""ASGI app: runs the bus for the process lifetime and serves health and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bus.heap import freeze_startup_heap
from bus.ops import ops_router
from campaigns.bootstrap import Container, bootstrap, run_migrations
from campaigns.metrics import REGISTRY
from campaigns.settings import Settings


def create_app(container: Container | None = None, *, migrate: bool = True) -> FastAPI:
    box = container or bootstrap()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await asyncio.to_thread(run_migrations, box.settings)
        await box.start()
        freeze_startup_heap()
        try:
            yield
        finally:
            await box.stop()

    app = FastAPI(title="switchboard-campaigns", lifespan=lifespan, docs_url=None, redoc_url=None)

    app.include_router(ops_router(box.bus, box.engine, registries=[REGISTRY]))
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory campaigns.app:app_from_env`."""
    return create_app(bootstrap(Settings()))
