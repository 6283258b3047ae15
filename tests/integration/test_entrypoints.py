"""Every service's `python -m <service>`: migrates, serves, becomes ready, and stops gracefully on
SIGTERM (the lifespan stops the bus, which lets in-flight handlers finish and commit offsets)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError

from bus.secrets import new_key
from devinfra.broker import free_port
from devinfra.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

# module, its port variable
SERVICES = [
    ("gateway", "GATEWAY_PORT"),
    ("provisioning", "PROVISIONING_PORT"),
    ("telephony", "TELEPHONY_PORT"),
    ("tool_webhooks", "TOOL_WEBHOOKS_PORT"),
    ("notifier", "NOTIFIER_PORT"),
    ("campaigns", "CAMPAIGNS_PORT"),
]


@pytest.fixture(scope="module")
def own_database(postgres_server_url: str) -> Iterator[str]:
    name = f"sb_entry_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    yield url
    drop_database(postgres_server_url, name)


@pytest.mark.parametrize(("module", "port_variable"), SERVICES)
def test_main_migrates_serves_and_stops_on_sigterm(
    module: str,
    port_variable: str,
    own_database: str,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
) -> None:
    port = free_port()
    env = {
        **os.environ,
        **kafka_client_env,
        "DATABASE_URL": own_database,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": f"entry{uuid.uuid4().hex[:6]}.",
        "ELEVENLABS_BASE_URL": "http://127.0.0.1:9",  # never called while idle
        "ELEVENLABS_API_KEY": "unused",
        "SWITCHBOARD_SECRET_KEY": new_key(),
        "SWITCHBOARD_API_KEYS": "k",
        port_variable: str(port),
    }
    migrate = subprocess.run(
        [sys.executable, "-m", module, "migrate"], env=env, capture_output=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr.decode()[-2000:]

    proc = subprocess.Popen([sys.executable, "-m", module], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "service exited early"
            assert time.monotonic() < deadline, "service never became ready"
            time.sleep(0.1)  # polling with a deadline
        # The README's three health endpoints, on every service (the gateway's /health: spec shape).
        assert httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "healthy", health.text
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert "switchboard_message_handle_seconds" in metrics
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        # uvicorn shuts down gracefully (the lifespan stops the bus), then re-raises the signal
        assert proc.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
        assert b"Application shutdown complete" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("module", [m for m, _ in SERVICES])
@pytest.mark.parametrize(
    ("key", "reason"),
    [("", "SWITCHBOARD_SECRET_KEY is empty"), ("tooshort-0123", "SWITCHBOARD_SECRET_KEY is too short")],
)
def test_every_service_refuses_an_unusable_secret_key(module: str, key: str, reason: str) -> None:
    settings = importlib.import_module(f"{module}.settings").Settings
    with pytest.raises(ValidationError, match=reason) as refused:
        settings.model_validate({"SWITCHBOARD_SECRET_KEY": key, "SWITCHBOARD_API_KEYS": "k"})
    assert not key or key not in str(refused.value)


def test_a_service_with_a_short_key_exits_before_touching_anything(own_database: str) -> None:
    """Not even migrations run; the error names the setting, never its value."""
    env = {**os.environ, "DATABASE_URL": own_database, "SWITCHBOARD_SECRET_KEY": "tooshort-0123"}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "migrate"], env=env, capture_output=True, timeout=60
    )
    stderr = done.stderr.decode()
    assert done.returncode != 0 and "SWITCHBOARD_SECRET_KEY is too short" in stderr, stderr[-2000:]
    assert "tooshort-0123" not in stderr
