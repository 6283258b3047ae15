"""Real broker, real database, real ElevenLabs simulator; the service bootstrapped in-process."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.fernet import Fernet
from sqlalchemy import select

from bus.runtime import message_headers
from contracts import topics
from contracts.base import Command
from devinfra.broker import create_topics
from elevenlabs_sim.testing import run_in_thread
from tool_webhooks import domain
from tool_webhooks.app import create_app
from tool_webhooks.bootstrap import Container, bootstrap, run_migrations
from tool_webhooks.models import POST_CALL_CONSUMER, inbox
from tool_webhooks.settings import Settings

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0
CONFIGURED_SECRET = "wsec_configured_by_hand"
SECRET_KEY = Fernet.generate_key().decode()


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
        "ELEVENLABS_WEBHOOK_SECRET": CONFIGURED_SECRET,
        "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        "TOOL_WEBHOOKS_UPSTREAM_MAX_RETRIES": 0,
        "BUS_RETRY_BACKOFF_MS": 50,
    }
    settings = Settings.model_validate(values)
    create_topics(
        kafka_bootstrap_servers,
        [
            settings.topic(topics.WEBHOOK_COMMANDS),
            settings.topic(topics.WEBHOOK_EVENTS),
            settings.topic(topics.dead_letter(topics.WEBHOOK_COMMANDS)),
            settings.topic(topics.dead_letter(topics.WEBHOOK_EVENTS)),
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
    """Posts webhooks to the app in-process, publishes commands, collects every event on Kafka."""

    settings: Settings
    container: Container
    app: httpx.AsyncClient
    sim: httpx.AsyncClient
    producer: AIOKafkaProducer
    events: list[dict[str, Any]] = field(default_factory=list)

    async def post(self, body: bytes, signature: str | None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers[domain.SIGNATURE_HEADER] = signature
        return await self.app.post("/api/v1/webhook/elevenlabs/post-call", content=body, headers=headers)

    async def post_signed(
        self, body: bytes, *, secret: str = CONFIGURED_SECRET, at: int | None = None
    ) -> httpx.Response:
        return await self.post(body, domain.sign(secret, body, int(time.time()) if at is None else at))

    def matching(self, **fields: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if all(e.get(k) == v for k, v in fields.items())]

    async def wait_for(self, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + DEADLINE_S
        while not (found := self.matching(**fields)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no event matching {fields}")
            await asyncio.sleep(0.02)  # polling with a deadline
        return found[0]

    async def publish(self, command: Command) -> None:
        headers = [(k, v.encode()) for k, v in message_headers(command).items()]
        await self.producer.send_and_wait(
            self.settings.topic(topics.WEBHOOK_COMMANDS),
            command.model_dump_json().encode(),
            key=b"k",
            headers=headers,
        )

    async def claimed(self, message_id: str) -> bool:
        async with self.container.engine.connect() as connection:
            result = await connection.execute(
                select(inbox.c.message_id).where(
                    inbox.c.consumer == POST_CALL_CONSUMER, inbox.c.message_id == message_id
                )
            )
            return result.first() is not None


@pytest.fixture(scope="session")
async def _harness(container: Container, settings: Settings, sim_url: str) -> AsyncIterator[Harness]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(
        settings.topic(topics.WEBHOOK_EVENTS),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await producer.start()
    await consumer.start()
    app = create_app(container, migrate=False)  # lifespan not run: the session container is live
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tool-webhooks") as client,
        httpx.AsyncClient(base_url=sim_url, headers={"xi-api-key": "sim-key"}) as sim,
    ):
        harness = Harness(settings, container, client, sim, producer)

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
    await _harness.sim.delete("/_sim/faults")
    yield _harness
    await _harness.sim.delete("/_sim/faults")
