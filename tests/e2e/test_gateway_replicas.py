"""Two gateway replicas: each answers its own requests, and a write on one is readable on the other."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from devinfra.broker import free_port
from devinfra.procs import wait_for_http
from devinfra.stack import Stack
from tests.e2e.conftest import API_KEY


@pytest.fixture(scope="module")
def second_gateway(stack: Stack) -> Iterator[httpx.Client]:
    port = free_port()
    env = stack.env | {"GATEWAY_PORT": str(port)}
    proc = stack.supervisor.start("gateway-2", [sys.executable, "-m", "gateway"], env=env, output=False)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health/ready", timeout=60, process=proc)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": API_KEY}, timeout=30
        ) as client:
            yield client
    finally:
        stack.supervisor.stop("gateway-2")


def test_each_replica_answers_its_own_writes_and_reads_the_others(
    api: httpx.Client, second_gateway: httpx.Client
) -> None:
    for i in range(6):
        writer, reader = (api, second_gateway) if i % 2 == 0 else (second_gateway, api)
        created = writer.post(
            "/api/v1/knowledge-base/text", json={"text": f"replica {i}", "name": f"replica-{i}"}
        )
        assert created.status_code == 200, created.text  # answered, not left pending
        doc_id = created.json()["id"]
        assert reader.get(f"/api/v1/knowledge-base/{doc_id}").json()["name"] == f"replica-{i}"
