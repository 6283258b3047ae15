"""The whole stack as real processes (simulator, provisioning, gateway) on the test broker and database."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devinfra.stack import Stack

API_KEY = "e2e-key"
REPLY_TIMEOUT_S = 3


SERVICES = ["elevenlabs-sim", "provisioning", "telephony", "tool-webhooks", "gateway"]


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    topic_prefix: str,
    database_url: str,
    log_dir: Path,
) -> Iterator[Stack]:
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "SWITCHBOARD_API_KEYS": f"{API_KEY},second-key",
        "GATEWAY_REPLY_TIMEOUT_S": str(REPLY_TIMEOUT_S),
        "KB_MAX_UPLOAD_BYTES": str(64 * 1024),
        "TELEPHONY_RECONCILE_AFTER_S": "3",
        "TELEPHONY_RECONCILE_INTERVAL_S": "1",
        "ELEVENLABS_SIM_CALL_DURATION_MS": "300",
        "ELEVENLABS_SIM_RING_MS": "100",
        "LOG_LEVEL": "INFO",
        **kafka_client_env,
    }
    with Stack(env, output=os.environ.get("E2E_OUTPUT") == "1", log_dir=log_dir) as st:
        st.start(SERVICES)
        # ElevenLabs (the simulator) delivers post-call webhooks to tool-webhooks, signed with the
        # secret that registration stored: the same path a user takes with a public URL.
        with httpx.Client(base_url=st.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=30) as client:
            registered = client.post(
                "/api/v1/admin/webhooks/post-call", json={"public_url": f"{st.url('tool-webhooks')}/api/v1"}
            )
            assert registered.status_code == 200, registered.text
        yield st


@pytest.fixture(scope="session")
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def sim(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("elevenlabs-sim"), timeout=10) as client:
        yield client


def upstream_requests(sim: httpx.Client, path: str = "", method: str | None = None) -> list[dict[str, Any]]:
    params = {"path": path} | ({"method": method} if method else {})
    return list(sim.get("/_sim/requests", params=params).json()["requests"])


def poll(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Return check()'s first truthy value, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
