"""Real broker, real database, real ElevenLabs simulator; the service bootstrapped in-process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Table, select

from bus.runtime import message_headers
from bus.secrets import Keyring, mint_tool_token, new_key
from contracts import topics
from contracts.base import Message
from contracts.provisioning import ToolCreated, ToolRecord, ToolToken
from devinfra.broker import free_port
from devinfra.bus_harness import DEADLINE_S as DEADLINE_S  # the tests wait as long as the harness
from devinfra.bus_harness import BusHarness, prepared, service_env, started, wait_for
from devinfra.pytest_plugin import isolated
from devinfra.standins.stores import Canary, StoreState, serve, shopify_app, woo_app
from elevenlabs_sim.testing import run_in_thread
from tool_webhooks import domain
from tool_webhooks.app import create_app
from tool_webhooks.bootstrap import Container, bootstrap, run_migrations
from tool_webhooks.models import POST_CALL_CONSUMER, ToolTokenState, inbox
from tool_webhooks.settings import Settings

# This suite runs its own tool-webhooks instance(s): own database and topics.
database_url, topic_prefix = isolated("tool_webhooks")

pytestmark = pytest.mark.integration

CONFIGURED_SECRET = "wsec_configured_by_hand"
SECRET_KEY = new_key()
KEYRING = Keyring(SECRET_KEY)


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with run_in_thread() as url:
        yield url


TOOL_BUDGET_S = 1.5


@dataclass
class Stores:
    woo_url: str
    woo: StoreState
    shopify_url: str
    shopify: StoreState
    canary: Canary


@pytest.fixture(scope="session")
def _stores() -> Iterator[Stores]:
    woo, shopify = StoreState(), StoreState()
    with serve(woo_app(woo)) as woo_url, serve(shopify_app(shopify)) as shopify_url, Canary() as canary:
        yield Stores(woo_url, woo, shopify_url, shopify, canary)


@pytest.fixture
def stores(_stores: Stores) -> Iterator[Stores]:
    _stores.woo.reset()
    _stores.shopify.reset()
    yield _stores
    _stores.woo.reset()
    _stores.shopify.reset()


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest, sim_url: str, _stores: Stores) -> Settings:
    values: dict[str, Any] = {
        **service_env(request),
        "ELEVENLABS_BASE_URL": sim_url,
        "ELEVENLABS_API_KEY": "sim-key",
        "ELEVENLABS_WEBHOOK_SECRET": CONFIGURED_SECRET,
        "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        "TOOL_WEBHOOKS_UPSTREAM_MAX_RETRIES": 0,
        # Only the two stand-ins are exempt from the private-address check; the canary is not.
        "OUTBOUND_ALLOW_HOSTS": ",".join(
            url.removeprefix("http://") for url in (_stores.woo_url, _stores.shopify_url)
        ),
        "ALLOW_HTTP_STORES": "true",
        "TOOL_RESPONSE_BUDGET_S": TOOL_BUDGET_S,
    }
    return prepared(
        Settings.model_validate(values),
        run_migrations,
        *(
            name
            for topic in (
                topics.WEBHOOK_COMMANDS,
                topics.WEBHOOK_EVENTS,
                topics.TELEPHONY_EVENTS,
                topics.PROVISIONING_EVENTS,
                topics.NOTIFIER_COMMANDS,
            )
            for name in (topic, topics.dead_letter(topic))
        ),
    )


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    async with started(bootstrap(settings)) as box:
        yield box


@dataclass(kw_only=True)
class Harness(BusHarness[Message]):
    """Posts webhooks to the app in-process, publishes commands, collects every event on Kafka."""

    commands_topic = topics.WEBHOOK_COMMANDS
    events_topic = topics.WEBHOOK_EVENTS

    settings: Settings
    container: Container
    app: httpx.AsyncClient
    sim: httpx.AsyncClient
    # SendEmail commands seen on the notifier commands topic.
    commands: list[dict[str, Any]] = field(default_factory=list)
    # route -> a valid token of a tool created (by event) for that route
    tokens: dict[str, str] = field(default_factory=dict)
    # Commands the call-control tools sent to the campaigns service.
    campaign_commands: list[dict[str, Any]] = field(default_factory=list)

    def sinks(self) -> dict[str, list[dict[str, Any]]]:
        return {
            **super().sinks(),
            self.settings.topic(topics.NOTIFIER_COMMANDS): self.commands,
            self.settings.topic(topics.CAMPAIGN_COMMANDS): self.campaign_commands,
        }

    async def post(self, body: bytes, signature: str | None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if signature is not None:
            headers[domain.SIGNATURE_HEADER] = signature
        return await self.app.post("/api/v1/webhook/elevenlabs/post-call", content=body, headers=headers)

    async def post_signed(
        self, body: bytes, *, secret: str = CONFIGURED_SECRET, at: int | None = None
    ) -> httpx.Response:
        return await self.post(body, domain.sign(secret, body, int(time.time()) if at is None else at))

    async def create_tool(self, route: str, *, tool_id: str | None = None) -> tuple[str, str, str]:
        """A tool calling `route`, created as provisioning announces it (its event projected):
        (tool id, token id, its generation-1 token)."""
        tool_id = tool_id or f"tool_{uuid.uuid4().hex[:12]}"
        token_id = uuid.uuid4().hex
        record = ToolRecord(
            tool_id=tool_id,
            name=route.replace("/", "_"),
            purpose="email" if route.startswith("email/") else "ecommerce_orders",
            created_at_unix=int(time.time()),
            token=ToolToken(token_id=token_id, route=route, generation=1),
        )
        await self.publish(ToolCreated(tool=record), topics.PROVISIONING_EVENTS, key=tool_id)
        await self.wait_row(ToolTokenState.__table__, tool_id=tool_id, token_id=token_id)  # type: ignore[arg-type]
        return tool_id, token_id, mint_tool_token(KEYRING, route, token_id, 1)

    async def tool(
        self,
        route: str,
        body: Any,
        *,
        token: str | None = "valid",  # noqa: S107 - "valid" means: a live tool's token
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST to a tool endpoint with the token of a live tool of that route (made once)."""
        sent = dict(headers or {})
        if token == "valid":
            if route not in self.tokens:
                self.tokens[route] = (await self.create_tool(route))[2]
            token = self.tokens[route]
        if token is not None:
            sent[domain.TOOL_TOKEN_HEADER] = token
        return await self.app.post(f"/api/v1/webhook/{route}", json=body, headers=sent)

    async def row(self, table: Table, **where: Any) -> dict[str, Any] | None:
        async with self.container.engine.connect() as connection:
            result = await connection.execute(
                select(table).where(*[table.c[k] == v for k, v in where.items()])
            )
            found = result.mappings().first()
            return dict(found) if found is not None else None

    async def wait_row(self, table: Table, **where: Any) -> dict[str, Any]:
        await self.until(lambda: self._exists(table, where), f"a {table.name} row {where}")
        row = await self.row(table, **where)
        assert row is not None
        return row

    async def _exists(self, table: Table, where: dict[str, Any]) -> bool:
        return await self.row(table, **where) is not None

    async def wait_command(self, **fields: Any) -> dict[str, Any]:
        return await wait_for(self.commands, what=f"command matching {fields}", **fields)

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
    app = create_app(container, migrate=False)  # lifespan not run: the session container is live
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tool-webhooks") as client,
        httpx.AsyncClient(base_url=sim_url, headers={"xi-api-key": "sim-key"}) as sim,
        Harness.connected(
            settings, headers=message_headers, container=container, app=client, sim=sim
        ) as harness,
    ):
        yield harness


@pytest.fixture
async def harness(_harness: Harness) -> AsyncIterator[Harness]:
    await _harness.sim.delete("/_sim/faults")
    yield _harness
    await _harness.sim.delete("/_sim/faults")


@pytest.fixture(scope="session")
async def http_url(container: Container) -> AsyncIterator[str]:
    """The real app behind uvicorn on a loopback port (real HTTP: chunked bodies, Content-Length),
    in this event loop so it shares the session's container."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(container, migrate=False),
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
