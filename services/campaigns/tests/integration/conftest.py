"""Real broker, real database, the ElevenLabs simulator, and the REAL telephony and tool-webhooks
services bootstrapped in-process next to the campaigns service.

The simulator delivers its signed post-call webhooks over HTTP to the tool-webhooks app (served by
uvicorn on this event loop), which publishes them; telephony turns them into `call.status_changed`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet

from bus.runtime import message_headers
from campaigns.bootstrap import Container, bootstrap, make_deps, run_migrations
from campaigns.models import Campaign
from campaigns.scheduling import Scheduler
from campaigns.settings import Settings
from campaigns.uow import UnitOfWork
from contracts import topics
from contracts.base import Message
from devinfra.broker import create_topics, free_port
from devinfra.bus_harness import BusHarness
from devinfra.numbers import outcome_number
from devinfra.pytest_plugin import isolated
from devinfra.quiet_hours import NO_QUIET_HOURS
from elevenlabs_sim.settings import SimSettings
from elevenlabs_sim.testing import run_in_thread
from telephony import bootstrap as telephony_bootstrap
from telephony.settings import Settings as TelephonySettings
from tool_webhooks import bootstrap as webhooks_bootstrap
from tool_webhooks.app import create_app as create_webhooks_app
from tool_webhooks.settings import Settings as WebhookSettings

# This suite runs its own campaigns instance(s): own database and topics.
database_url, topic_prefix = isolated("campaigns")

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
WEBHOOK_SECRET = "wsec_campaigns_tests"
SECRET_KEY = Fernet.generate_key().decode()
FINAL = {"completed", "no_answer", "busy", "failed", "voicemail", "cancelled", "skipped_dnc"}
CALL_MS = 150
RING_MS = 50


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with run_in_thread(SimSettings(ring_ms=RING_MS, call_duration_ms=CALL_MS, processing_ms=20)) as url:
        yield url


def _common(
    database_url: str, kafka_bootstrap_servers: str, kafka_client_env: dict[str, str], topic_prefix: str
) -> dict[str, Any]:
    return {
        **kafka_client_env,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "BUS_RETRY_BACKOFF_MS": 50,
        "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        "DATABASE_POOL_SIZE": 2,  # few idle connections through the session (see devinfra.bus_harness)
    }


@pytest.fixture(scope="session")
def settings(
    database_url: str,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    topic_prefix: str,
) -> Settings:
    common = _common(database_url, kafka_bootstrap_servers, kafka_client_env, topic_prefix)
    settings = Settings.model_validate(
        {
            **common,
            "CAMPAIGNS_TICK_S": 0.05,
            "CAMPAIGNS_RETRY_DELAY_SCALE": 0.001,
            "CAMPAIGNS_RATE_LIMIT_BACKOFF_S": 0.2,
            "CAMPAIGNS_PROGRESS_INTERVAL_S": 0.3,
            # Auto-pause only on 10 failures in a row: no other test comes close.
            "CAMPAIGNS_FAILURE_WINDOW": 10,
            # Tests run at any hour and redial their numbers: quiet hours and the cap have their
            # own tests (test_quiet_hours_and_caps.py), on clocks passed in.
            "QUIET_HOURS_FILE": str(NO_QUIET_HOURS),
            "CAMPAIGNS_MAX_ATTEMPTS_PER_NUMBER_24H": 10**6,
            "CAMPAIGNS_FAILURE_PAUSE_RATIO": 0.9,
        }
    )
    names = [
        topics.CAMPAIGN_COMMANDS,
        topics.CAMPAIGN_EVENTS,
        topics.TELEPHONY_COMMANDS,
        topics.TELEPHONY_EVENTS,
        topics.WEBHOOK_COMMANDS,
        topics.WEBHOOK_EVENTS,
    ]
    full = [settings.topic(n) for n in names]
    create_topics(kafka_bootstrap_servers, full + [topics.dead_letter(t) for t in full])
    run_migrations(settings)
    return settings


@pytest.fixture(scope="session")
async def telephony(
    settings: Settings, sim_url: str, database_url: str, kafka_client_env: dict[str, str], topic_prefix: str
) -> AsyncIterator[telephony_bootstrap.Container]:
    common = _common(database_url, settings.kafka_bootstrap_servers, kafka_client_env, topic_prefix)
    tel_settings = TelephonySettings.model_validate(
        {
            **common,
            "ELEVENLABS_BASE_URL": sim_url,
            "ELEVENLABS_API_KEY": "sim-key",
            "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
            "TELEPHONY_UPSTREAM_MAX_RETRIES": 0,  # a 429 reaches the campaigns service at once
            "TELEPHONY_RECONCILE_INTERVAL_S": 0.25,
            "TELEPHONY_RECONCILE_AFTER_S": 1.0,  # digit 9: the webhook is lost, reconciliation finds it
        }
    )
    await asyncio.to_thread(telephony_bootstrap.run_migrations, tel_settings)
    box = telephony_bootstrap.bootstrap(tel_settings)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


@pytest.fixture(scope="session")
async def webhooks_url(
    settings: Settings, sim_url: str, database_url: str, kafka_client_env: dict[str, str], topic_prefix: str
) -> AsyncIterator[str]:
    common = _common(database_url, settings.kafka_bootstrap_servers, kafka_client_env, topic_prefix)
    wh_settings = WebhookSettings.model_validate(
        {
            **common,
            "ELEVENLABS_BASE_URL": sim_url,
            "ELEVENLABS_API_KEY": "sim-key",
            "ELEVENLABS_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        }
    )
    await asyncio.to_thread(webhooks_bootstrap.run_migrations, wh_settings)
    box = webhooks_bootstrap.bootstrap(wh_settings)
    await box.start()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_webhooks_app(box, migrate=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "tool-webhooks app did not start"
        await asyncio.sleep(0.01)  # polling with a deadline
    try:
        yield f"http://127.0.0.1:{port}/api/v1/webhook/elevenlabs/post-call"
    finally:
        server.should_exit = True
        await task
        await box.stop()


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    box = bootstrap(settings)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


def new_number(last_digit: str) -> str:
    """A fresh valid San Francisco number whose last digit picks the simulated outcome (never one
    the simulator refuses: `devinfra.numbers`)."""
    return outcome_number(last_digit)


@dataclass(kw_only=True)
class Harness(BusHarness[Message]):
    """Publishes commands like any producer would and collects every campaign event."""

    commands_topic = topics.CAMPAIGN_COMMANDS
    events_topic = topics.CAMPAIGN_EVENTS

    settings: Settings
    sim: httpx.AsyncClient
    container: Container
    telephony: telephony_bootstrap.Container
    webhooks_url: str
    agent_id: str = ""
    phone_number_id: str = ""

    async def publish_raw(self, body: dict[str, Any], *, key: str = "k") -> None:
        await self.producer.send_and_wait(
            self.settings.topic(topics.CAMPAIGN_COMMANDS), json.dumps(body).encode(), key=key.encode()
        )

    async def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        /,
        *,
        deadline_s: float = DEADLINE_S,
        what: str = "",
        **fields: Any,
    ) -> dict[str, Any]:
        """The LATEST matching event once one has arrived: a campaign event carries the campaign's
        whole state, and the newest is the one that counts."""
        await super().wait_for(predicate, deadline_s=deadline_s, what=what, **fields)
        return self.matching(predicate, **fields)[-1]

    def campaign_events(self, campaign_id: str) -> list[dict[str, Any]]:
        return [
            e["campaign"]
            for e in self.events
            if e.get("type") == "campaign.updated" and e["campaign"]["campaign_id"] == campaign_id
        ]

    def recipient_events(self, campaign_id: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("type") == "campaign.recipient_updated" and e["campaign_id"] == campaign_id
        ]

    def final_states(self, campaign_id: str) -> dict[str, str]:
        """recipient_id -> its last recipient event status."""
        out: dict[str, str] = {}
        for e in self.recipient_events(campaign_id):
            out[e["recipient_id"]] = e["status"]
        return out

    def bulk_events(self, campaign_id: str, kind: str) -> list[dict[str, Any]]:
        """`campaign.recipients_<kind>` events (staged, closed) of a campaign, in arrival order."""
        return [
            e
            for e in self.events
            if e.get("type") == f"campaign.recipients_{kind}" and e["campaign_id"] == campaign_id
        ]

    def states(self, campaign_id: str) -> dict[str, tuple[str, str | None]]:
        """recipient_id -> (status, reason) built from the events alone, as any consumer would:
        staged, then each one-by-one or bulk change in the order they were published."""
        out: dict[str, tuple[str, str | None]] = {}
        for e in self.events:
            if e.get("campaign_id") != campaign_id:
                continue
            if e.get("type") == "campaign.recipients_staged":
                out |= {r["recipient_id"]: (r["status"], r.get("reason")) for r in e["recipients"]}
            elif e.get("type") == "campaign.recipients_closed":
                out |= {r["recipient_id"]: (e["status"], e.get("reason")) for r in e["recipients"]}
            elif e.get("type") == "campaign.recipient_updated":
                out[e["recipient_id"]] = (e["status"], e.get("reason"))
        return out

    async def wait_status(
        self, campaign_id: str, status: str, *, deadline_s: float = DEADLINE_S
    ) -> dict[str, Any]:
        event = await self.wait_for(
            lambda e: (
                e.get("type") == "campaign.updated"
                and e["campaign"]["campaign_id"] == campaign_id
                and e["campaign"]["status"] == status
            ),
            deadline_s=deadline_s,
            what=f"{campaign_id} {status}",
        )
        return dict(event["campaign"])

    async def campaign_row(self, campaign_id: str) -> Campaign:
        """The campaign as the service keeps it now (its database row)."""
        async with self.container.sessionmaker() as session:
            campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None, campaign_id
        return campaign

    async def scheduler_pass(self, now: datetime | None = None) -> int:
        """One scheduler pass on the clock `now` (default: the real one), by a scheduler of the
        test's own so the service's background one keeps its state; returns how many PlaceCall
        commands it dispatched."""
        box = self.container
        return await Scheduler(make_deps(box.settings, lambda: UnitOfWork(box.sessionmaker, box.bus))).tick(
            now
        )

    async def dispatches_nothing_more(self, campaign_id: str, dispatched: int) -> None:
        """Proof that a stopped campaign dials nobody new: once it has no call in flight (capacity
        free, its recipients due), a scheduler pass leaves it with `dispatched` dispatches, the
        count it stopped with. A scheduler that dialled anyway (in the background as soon as the
        call in flight ended, or in this pass) leaves more."""

        async def idle() -> bool:
            return (await self.campaign_row(campaign_id)).in_flight == 0

        await self.until(idle, f"{campaign_id} without a call in flight")
        await self.scheduler_pass()
        assert (await self.campaign_row(campaign_id)).total_dispatched == dispatched

    async def stats(self) -> dict[str, Any]:
        response = await self.sim.get("/_sim/calls/stats")
        response.raise_for_status()
        return dict(response.json())

    async def configure(self, **config: Any) -> None:
        response = await self.sim.post("/_sim/config", json=config)
        response.raise_for_status()

    async def fresh_world(self, **config: Any) -> None:
        """Reset the simulator (stats included), then an agent, a number and the webhook target."""
        (await self.sim.post("/_sim/reset")).raise_for_status()
        await self.configure(
            webhook_url=self.webhooks_url,
            webhook_secret=WEBHOOK_SECRET,
            call_duration_ms=CALL_MS,
            ring_ms=RING_MS,
            **config,
        )
        client = self.telephony.elevenlabs
        self.agent_id = await client.create_agent(
            {"name": "caller", "conversation_config": {"agent": {"first_message": "Hello"}}}
        )
        self.phone_number_id = await client.create_phone_number(
            {"provider": "twilio", "phone_number": new_number("1"), "label": "T", "sid": "AC1", "token": "t"}
        )


@pytest.fixture(scope="session")
async def _harness(
    container: Container, telephony: telephony_bootstrap.Container, webhooks_url: str, sim_url: str
) -> AsyncIterator[Harness]:
    async with (
        httpx.AsyncClient(base_url=sim_url) as sim,
        Harness.connected(
            container.settings,
            headers=message_headers,
            sim=sim,
            container=container,
            telephony=telephony,
            webhooks_url=webhooks_url,
        ) as harness,
    ):
        yield harness


@pytest.fixture
async def harness(_harness: Harness) -> Harness:
    await _harness.fresh_world()
    return _harness
