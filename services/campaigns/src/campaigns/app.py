"""ASGI app: runs the bus for the process lifetime and serves health and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

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
        try:
            yield
        finally:
            await box.stop()

    app = FastAPI(title="switchboard-campaigns", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/health/ready")
    async def ready() -> JSONResponse:
        checks = {"kafka": await box.bus.ping(), "database": await _database_ok(box)}
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"status": "ok" if status == 200 else "unavailable", "checks": checks}, status)

    @app.get("/metrics")
    async def metrics() -> Response:
        body = generate_latest() + generate_latest(REGISTRY)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


async def _database_ok(box: Container) -> bool:
    try:
        async with box.engine.connect() as connection:
            await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2.0)
    except Exception:
        return False
    return True


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory campaigns.app:app_from_env`."""
    return create_app(bootstrap(Settings()))
