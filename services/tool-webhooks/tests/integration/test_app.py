"""Health, readiness and metrics."""

from __future__ import annotations

import httpx
import pytest

from tool_webhooks.app import create_app
from tool_webhooks.bootstrap import Container, bootstrap
from tool_webhooks.settings import Settings

pytestmark = pytest.mark.integration


async def test_live_ready_and_metrics(container: Container) -> None:
    app = create_app(container, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"kafka": True, "database": True}
        metrics = await client.get("/metrics")
        assert "switchboard_post_call_webhooks_total" in metrics.text


async def test_ready_is_503_when_dependencies_are_down() -> None:
    settings = Settings.model_validate(
        {
            "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        }
    )
    box = bootstrap(settings)
    try:
        app = create_app(box, migrate=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"kafka": False, "database": False}
    finally:
        await box.close()
