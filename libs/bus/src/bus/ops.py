"""Liveness, readiness and Prometheus metrics: the same three endpoints on every service."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.runtime import Bus

log = structlog.get_logger("bus.ops")


async def database_ok(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as connection:
            await asyncio.wait_for(connection.execute(text("SELECT 1")), timeout=2.0)
    except Exception as exc:
        # A 503 alone does not say why ("too many clients", a timeout, a refused socket): the log does.
        log.warning("readiness_database_failed", error_type=type(exc).__name__, error=str(exc)[:300])
        return False
    return True


def ops_router(
    bus: Bus,
    engine: AsyncEngine,
    *,
    registries: Sequence[CollectorRegistry] = (),
    health: bool = True,
) -> APIRouter:
    """`/health` (`{"status": "healthy"}`: the process answers, as the API's `/health` says it;
    `health=False` for a service with its own, the gateway's spec shape), `/health/live` (the
    process answers), `/health/ready` (Kafka and PostgreSQL answer: 200 or 503) and `/metrics`
    (the default registry plus any service-specific ones)."""
    router = APIRouter(include_in_schema=False)

    if health:
        # The README promises /health, /health/live and /health/ready on every service: a probe
        # or a person trying the documented /health on any port must not get a 404.
        @router.get("/health")
        async def healthy() -> dict[str, str]:
            return {"status": "healthy"}

    @router.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/health/ready")
    async def ready() -> JSONResponse:
        checks = {"kafka": await bus.ping(), "database": await database_ok(engine)}
        ok = all(checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        body = generate_latest() + b"".join(generate_latest(r) for r in registries)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
