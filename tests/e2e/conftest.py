"""The whole stack as real processes (simulator, provisioning, gateway) on the test broker and database."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devinfra.stack import Stack

API_KEY = "e2e-key"
REPLY_TIMEOUT_S = 3


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap_servers: str, kafka_client_env: dict[str, str], topic_prefix: str, database_url: str
) -> Iterator[Stack]:
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "SWITCHBOARD_API_KEYS": f"{API_KEY},second-key",
        "GATEWAY_REPLY_TIMEOUT_S": str(REPLY_TIMEOUT_S),
        "KB_MAX_UPLOAD_BYTES": str(64 * 1024),
        "LOG_LEVEL": "INFO",
        **kafka_client_env,
    }
    with Stack(env, output=os.environ.get("E2E_OUTPUT") == "1") as st:
        st.start(["elevenlabs-sim", "provisioning", "gateway"])
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
