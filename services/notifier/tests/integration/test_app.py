"""Health, readiness, metrics, and the `python -m notifier` entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from devinfra.postgres import create_database, drop_database
from notifier.app import create_app
from notifier.bootstrap import Container, bootstrap
from notifier.settings import Settings

from .conftest import Harness, email, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def own_database(postgres_server_url: str) -> Iterator[str]:
    name = f"sb_notif_main_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, name)


# Defined before the tests that start the in-process service: this process joins the same consumer
# group ("notifier"), and joining next to a live member costs a rebalance on start and stop.
def test_main_migrates_serves_and_stops_on_sigterm(
    own_database: str, kafka_bootstrap_servers: str, kafka_client_env: dict[str, str]
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **kafka_client_env,
        "DATABASE_URL": own_database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": f"main{uuid.uuid4().hex[:6]}.",
        "NOTIFIER_PORT": str(port),
        "SMTP_PASSWORD": "smtp-password-canary-91c2",
        "EMAIL_API_KEY": "api-key-canary-77ab",
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "notifier", "migrate"], env=env, capture_output=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr.decode()[-2000:]

    proc = subprocess.Popen([sys.executable, "-m", "notifier"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                _, stderr = proc.communicate()
                raise AssertionError(f"service exited early: {stderr.decode()[-3000:]}")
            assert time.monotonic() < deadline, "service never became ready"
            time.sleep(0.1)  # polling with a deadline
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        # uvicorn shuts down gracefully (lifespan stops the bus), then re-raises the signal
        assert proc.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
        assert b"Application shutdown complete" in stderr
        assert b"canary" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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


async def test_ready_is_503_when_dependencies_are_down() -> None:
    settings = Settings.model_validate(
        {
            "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        }
    )
    box = bootstrap(settings)
    app = create_app(box, migrate=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"kafka": False, "database": False}
    finally:
        await box.http.aclose()
        await box.engine.dispose()
