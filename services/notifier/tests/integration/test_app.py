"""The notifier's business metrics after real sends (the entry point and readiness are tested for every
service in tests/integration/test_entrypoints.py and libs/bus/tests/test_ops.py)."""

from __future__ import annotations

import httpx
import pytest

from notifier.app import create_app
from notifier.bootstrap import Container

from .conftest import Harness, email

pytestmark = pytest.mark.integration


async def test_live_ready_and_metrics(container: Container, harness: Harness) -> None:
    await harness.one(email())  # at least one e-mail sent through this process
    await harness.one(email(to_email="nope"))  # and one permanent failure
    app = create_app(container, migrate=False)  # lifespan not run: the session container is live
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/health/live")).status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"kafka": True, "database": True}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "switchboard_emails_sent_total " in metrics.text
        assert 'switchboard_emails_failed_total{permanent="true"}' in metrics.text
        assert "switchboard_message_handle_seconds" in metrics.text
