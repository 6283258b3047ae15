"""Real broker, real database, real ElevenLabs simulator; the service bootstrapped in-process."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bus.runtime import message_headers
from contracts import topics
from contracts.base import Command
from contracts.provisioning import DeleteTool
from devinfra.broker import create_topics
from devinfra.pytest_plugin import isolated
from elevenlabs_sim.testing import run_in_thread
from provisioning.bootstrap import Container, bootstrap, run_migrations
from provisioning.settings import Settings

# This suite runs its own provisioning instance(s): own database and topics.
database_url, topic_prefix = isolated("provisioning")

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with run_in_thread() as url:
        yield url


@pytest.fixture(scope="session")
def settings(
    database_url: str,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    topic_prefix: str,
    sim_url: str,
) -> Settings:
    values: dict[str, Any] = {
        **kafka_client_env,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "ELEVENLABS_BASE_URL": sim_url,
        "ELEVENLABS_API_KEY": "sim-key",
        "SWITCHBOARD_SECRET_KEY": "test-secret-key",
        "PROVISIONING_UPSTREAM_INITIAL_BACKOFF_S": 0.05,
        "PROVISIONING_UPSTREAM_MAX_BACKOFF_S": 1.0,
        "BUS_RETRY_BACKOFF_MS": 50,
    }
    settings = Settings.model_validate(values)
    create_topics(
        kafka_bootstrap_servers,
        [
            settings.topic(topics.PROVISIONING_COMMANDS),
            settings.topic(topics.PROVISIONING_EVENTS),
            settings.topic(topics.dead_letter(topics.PROVISIONING_COMMANDS)),
        ],
    )
    run_migrations(settings)
    return settings


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    box = bootstrap(settings)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


@dataclass
class Harness:
    """Publishes commands like any producer would and collects every outcome event."""

    settings: Settings
    sim: httpx.AsyncClient
    producer: AIOKafkaProducer
    events: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, command: Command, *, key: str = "k") -> None:
        headers = [(k, v.encode()) for k, v in message_headers(command).items()]
        await self.producer.send_and_wait(
            self.settings.topic(topics.PROVISIONING_COMMANDS),
            command.model_dump_json().encode(),
            key=key.encode(),
            headers=headers,
        )

    def outcomes(self, command_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("causation_id") == command_id]

    async def deliver(self, *commands: Command) -> dict[str, list[dict[str, Any]]]:
        """Publish in order on one partition, then a marker; wait until all have outcomes.

        The marker is handled after every command before it (same key, same partition), so by the
        time its outcome arrives a duplicate outcome of an earlier command would have been written.
        """
        marker = DeleteTool(tool_id="marker-does-not-exist")
        for command in (*commands, marker):
            await self.publish(command)
        wanted = {c.message_id for c in (*commands, marker)}
        deadline = time.monotonic() + DEADLINE_S
        while not all(self.outcomes(i) for i in wanted):
            if time.monotonic() > deadline:
                raise AssertionError(f"no outcome for {[i for i in wanted if not self.outcomes(i)]}")
            await asyncio.sleep(0.02)  # polling with a deadline
        return {c.message_id: self.outcomes(c.message_id) for c in commands}

    async def one(self, command: Command) -> dict[str, Any]:
        outcomes = (await self.deliver(command))[command.message_id]
        assert len(outcomes) == 1, outcomes
        event = outcomes[0]
        assert event["causation_id"] == command.message_id
        assert event["correlation_id"] == command.correlation_id
        return event

    async def requests(self, method: str | None = None, path: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"method": method, "path": path}.items() if v}
        response = await self.sim.get("/_sim/requests", params=params)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries

    async def fault(self, **spec: Any) -> None:
        (await self.sim.post("/_sim/faults", json=spec)).raise_for_status()


@pytest.fixture(scope="session")
async def _harness(container: Container, settings: Settings, sim_url: str) -> AsyncIterator[Harness]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(
        settings.topic(topics.PROVISIONING_EVENTS),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await producer.start()
    await consumer.start()
    async with httpx.AsyncClient(base_url=sim_url) as sim:
        harness = Harness(settings, sim, producer)

        async def collect() -> None:
            async for record in consumer:
                harness.events.append(json.loads(record.value or b"{}"))

        task = asyncio.create_task(collect())
        try:
            yield harness
        finally:
            task.cancel()
            await consumer.stop()
            await producer.stop()


@pytest.fixture
async def harness(_harness: Harness) -> AsyncIterator[Harness]:
    await _harness.sim.delete("/_sim/requests")
    await _harness.sim.delete("/_sim/faults")
    yield _harness
    await _harness.sim.delete("/_sim/faults")


@pytest.fixture(scope="session")
def file_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """Stands in for the gateway's signed upload URL: serves bytes registered by path."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.split("?", 1)[0])
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
