"""Readiness reflects the broker and the database: 503 with the failing checks when they are down."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import MetaData

from bus.db import make_engine
from bus.ops import ops_router
from bus.runtime import Bus
from bus.settings import BusSettings
from bus.tables import make_bus_tables


async def test_ready_is_503_when_kafka_and_postgres_are_down() -> None:
    settings = BusSettings.model_validate(
        {
            "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        }
    )
    engine = make_engine(settings.database_url)
    outbox, _ = make_bus_tables(MetaData(schema="ops_test"))
    app = FastAPI()
    app.include_router(
        ops_router(Bus(settings, service="ops-test", engine=engine, outbox_table=outbox), engine)
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            assert (await client.get("/health/live")).json() == {"status": "ok"}
            health = await client.get("/health")  # the process answers, whatever its dependencies
            assert (health.status_code, health.json()) == (200, {"status": "healthy"})
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json() == {"status": "unavailable", "checks": {"kafka": False, "database": False}}
            assert (await client.get("/metrics")).status_code == 200
    finally:
        await engine.dispose()
