"""Real broker, real database, real ElevenLabs simulator; the service bootstrapped in-process."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.fernet import Fernet
from sqlalchemy import text

from bus.runtime import message_headers
from contracts import topics
from contracts.base import Message
from contracts.telephony import DeleteCustomerSession
from devinfra.broker import create_topics
from devinfra.pytest_plugin import isolated
from elevenlabs_sim.settings import SimSettings
from elevenlabs_sim.testing import run_in_thread
from telephony.bootstrap import Container, bootstrap, run_migrations
from telephony.settings import Settings

# This suite runs its own telephony instance(s): own database and topics.
database_url, topic_prefix = isolated("telephony")

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0
SECRET_KEY = Fernet.generate_key().decode()
RECONCILE_AFTER_S = 5.0


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    # Short calls keep the suite fast: ring 100 ms, talk 300 ms, analysis 50 ms.
    with run_in_thread(SimSettings(ring_ms=100, call_duration_ms=300, processing_ms=50)) as url:
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
        "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        "TELEPHONY_UPSTREAM_INITIAL_BACKOFF_S": 0.05,
        "TELEPHONY_UPSTREAM_MAX_BACKOFF_S": 1.0,
        "TELEPHONY_RECONCILE_INTERVAL_S": 0.25,
        "TELEPHONY_RECOVERY_SETTLE_S": 0.2,
        "TELEPHONY_RECONCILE_AFTER_S": RECONCILE_AFTER_S,
        "BUS_RETRY_BACKOFF_MS": 50,
    }
    settings = Settings.model_validate(values)
    create_topics(
        kafka_bootstrap_servers,
        [
            settings.topic(topics.TELEPHONY_COMMANDS),
            settings.topic(topics.TELEPHONY_EVENTS),
            settings.topic(topics.WEBHOOK_EVENTS),
            settings.topic(topics.dead_letter(topics.TELEPHONY_COMMANDS)),
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


def encrypt(secret: str) -> str:
    return Fernet(SECRET_KEY.encode()).encrypt(secret.encode()).decode()


@dataclass
class Harness:
    """Publishes commands and webhook events like any producer would and collects every event."""

    settings: Settings
    sim: httpx.AsyncClient
    producer: AIOKafkaProducer
    container: Container
    events: list[dict[str, Any]] = field(default_factory=list)

    async def publish(
        self, message: Message, *, topic: str = topics.TELEPHONY_COMMANDS, key: str = "k"
    ) -> None:
        headers = [(k, v.encode()) for k, v in message_headers(message).items()]
        await self.producer.send_and_wait(
            self.settings.topic(topic), message.model_dump_json().encode(), key=key.encode(), headers=headers
        )

    def outcomes(self, command_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("causation_id") == command_id]

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], *, deadline_s: float = DEADLINE_S, what: str = ""
    ) -> dict[str, Any]:
        deadline = time.monotonic() + deadline_s
        while True:
            found = [e for e in self.events if predicate(e)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no event {what}")
            await asyncio.sleep(0.02)  # polling with a deadline

    async def deliver(self, *commands: Message) -> dict[str, list[dict[str, Any]]]:
        """Publish in order on one partition, then a marker; wait until all have outcomes.

        The marker is handled after every command before it (same key, same partition), so by the
        time its outcome arrives a duplicate outcome of an earlier command would have been written.
        """
        marker = DeleteCustomerSession(conversation_id=f"marker-{uuid.uuid4().hex}")
        for command in (*commands, marker):
            await self.publish(command)
        wanted = {c.message_id for c in (*commands, marker)}
        deadline = time.monotonic() + DEADLINE_S
        while not all(self.outcomes(i) for i in wanted):
            if time.monotonic() > deadline:
                raise AssertionError(f"no outcome for {[i for i in wanted if not self.outcomes(i)]}")
            await asyncio.sleep(0.02)  # polling with a deadline
        return {c.message_id: self.outcomes(c.message_id) for c in commands}

    async def one(self, command: Message) -> dict[str, Any]:
        outcomes = (await self.deliver(command))[command.message_id]
        assert len(outcomes) == 1, outcomes
        event = outcomes[0]
        assert event["causation_id"] == command.message_id
        assert event["correlation_id"] == command.correlation_id
        return event

    async def sim_get(self, url: str, **params: Any) -> Any:
        response = await self.sim.get(url, params=params)
        response.raise_for_status()
        return response.json()

    async def dials(self, to_number: str) -> int:
        stats = await self.sim_get("/_sim/calls/stats")
        return int(stats["dials_by_number"].get(to_number, 0))

    async def table_text(self) -> str:
        """Every row of every telephony table (outbox payloads decoded), as one string."""
        chunks: list[str] = []
        async with self.container.engine.connect() as connection:
            names = await connection.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'telephony'")
            )
            for (name,) in names.all():
                rows = await connection.execute(text(f'SELECT t::text FROM telephony."{name}" t'))  # noqa: S608
                chunks.extend(r[0] for r in rows.all())
            payloads = await connection.execute(
                text("SELECT convert_from(payload, 'UTF8') FROM telephony.outbox")
            )
            chunks.extend(r[0] for r in payloads.all())
        return "\n".join(chunks)


@pytest.fixture(scope="session")
async def _harness(container: Container, settings: Settings, sim_url: str) -> AsyncIterator[Harness]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(
        settings.topic(topics.TELEPHONY_EVENTS),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await producer.start()
    await consumer.start()
    async with httpx.AsyncClient(base_url=sim_url) as sim:
        harness = Harness(settings, sim, producer, container)

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
async def agent_id(container: Container) -> str:
    return await container.elevenlabs.create_agent(
        {"name": "caller", "conversation_config": {"agent": {"first_message": "Hello"}}}
    )


def new_number(last_digit: str) -> str:
    """A fresh E.164 number whose last digit picks the simulated outcome."""
    return f"+1555{uuid.uuid4().int % 10**6:06d}{last_digit}"


@pytest.fixture(scope="session")
async def twilio_phone_id(container: Container, agent_id: str) -> str:
    return await container.elevenlabs.create_phone_number(
        {"provider": "twilio", "phone_number": new_number("1"), "label": "T", "sid": "AC1", "token": "t"}
    )


@pytest.fixture(scope="session")
async def sip_phone_id(container: Container) -> str:
    return await container.elevenlabs.create_phone_number(
        {
            "provider": "sip_trunk",
            "phone_number": new_number("2"),
            "label": "S",
            "outbound_trunk_config": {"address": "sip.example.com"},
        }
    )
