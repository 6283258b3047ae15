"""Real broker, real database, real ElevenLabs simulator; the service bootstrapped in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bus.runtime import message_headers
from bus.secrets import Keyring, message_context, new_key
from contracts import topics
from contracts.base import Command, Message
from contracts.telephony import DeleteCustomerSession
from devinfra.bus_harness import DEADLINE_S as DEADLINE_S  # the tests wait as long as the harness
from devinfra.bus_harness import BusHarness, prepared, schema_text, service_env, started
from devinfra.numbers import outcome_number
from devinfra.pytest_plugin import isolated
from elevenlabs_sim.settings import SimSettings
from elevenlabs_sim.testing import run_in_thread
from telephony.bootstrap import Container, bootstrap, run_migrations
from telephony.settings import Settings
from telephony.uow import UnitOfWork

# This suite runs its own telephony instance(s): own database and topics.
database_url, topic_prefix = isolated("telephony")

pytestmark = pytest.mark.integration

SECRET_KEY = new_key()
RECONCILE_AFTER_S = 5.0


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    # Short calls keep the suite fast: ring 100 ms, talk 300 ms, analysis 50 ms.
    with run_in_thread(SimSettings(ring_ms=100, call_duration_ms=300, processing_ms=50)) as url:
        yield url


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest, sim_url: str) -> Settings:
    values: dict[str, Any] = {
        **service_env(request),
        "ELEVENLABS_BASE_URL": sim_url,
        "ELEVENLABS_API_KEY": "sim-key",
        "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        "TELEPHONY_UPSTREAM_INITIAL_BACKOFF_S": 0.05,
        "TELEPHONY_UPSTREAM_MAX_BACKOFF_S": 1.0,
        "TELEPHONY_RECONCILE_INTERVAL_S": 0.25,
        "TELEPHONY_RECOVERY_SETTLE_S": 0.2,
        "TELEPHONY_RECONCILE_AFTER_S": RECONCILE_AFTER_S,
    }
    return prepared(
        Settings.model_validate(values),
        run_migrations,
        topics.TELEPHONY_COMMANDS,
        topics.TELEPHONY_EVENTS,
        topics.WEBHOOK_EVENTS,
        topics.dead_letter(topics.TELEPHONY_COMMANDS),
        topics.dead_letter(topics.WEBHOOK_EVENTS),
    )


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    async with started(bootstrap(settings)) as box:
        yield box


def encrypt(secret: str, field: str = "token_encrypted") -> str:
    """As the gateway does: bound to the command field the ciphertext travels in."""
    return Keyring(SECRET_KEY).encrypt(secret, context=message_context(field))


@dataclass(kw_only=True)
class Harness(BusHarness[Message]):
    """Publishes commands and webhook events like any producer would and collects every event."""

    commands_topic = topics.TELEPHONY_COMMANDS
    events_topic = topics.TELEPHONY_EVENTS

    settings: Settings
    sim: httpx.AsyncClient
    container: Container

    def marker(self) -> Message:
        return DeleteCustomerSession(conversation_id=f"marker-{uuid.uuid4().hex}")

    async def sim_get(self, url: str, **params: Any) -> Any:
        response = await self.sim.get(url, params=params)
        response.raise_for_status()
        return response.json()

    async def dials(self, to_number: str) -> int:
        stats = await self.sim_get("/_sim/calls/stats")
        return int(stats["dials_by_number"].get(to_number, 0))

    async def table_text(self) -> str:
        """Every row of every telephony table (outbox payloads decoded), as one string."""
        return await schema_text(self.settings.database_url, "telephony")


@pytest.fixture(scope="session")
async def _harness(container: Container, settings: Settings, sim_url: str) -> AsyncIterator[Harness]:
    async with (
        httpx.AsyncClient(base_url=sim_url) as sim,
        Harness.connected(settings, headers=message_headers, sim=sim, container=container) as harness,
    ):
        yield harness


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
    """A fresh E.164 number whose last digit picks the simulated outcome (never one the simulator
    refuses: `devinfra.numbers`)."""
    return outcome_number(last_digit, prefix="+1555")


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


async def pretend_crashed(container: Container, command: Command) -> None:
    """As if an earlier delivery of `command` crashed after step 1 of the ledger (bus.ledger): its
    row stays `started`, so the next delivery recovers."""
    async with UnitOfWork(container.sessionmaker, container.bus) as uow:
        await uow.commands.start(command.message_id, command.type)
