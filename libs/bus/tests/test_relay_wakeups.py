"""The outbox relay on the real broker and PostgreSQL: a relay is woken by its own outbox's rows
only, still relays rows queued under the old shared queue name, and relays the rows a relay that
died had leased once their lease ends."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, Table, event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.db import make_engine, make_sessionmaker
from bus.runtime import Bus
from bus.settings import BusSettings
from bus.tables import make_bus_tables
from contracts.base import Command
from devinfra.broker import create_topics_async
from devinfra.bus_harness import wait_until

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
# The shared poll (devinfra.bus_harness), with a deadline for a loaded CI machine.
until = functools.partial(wait_until, deadline_s=DEADLINE_S)


class Tick(Command):
    type: Literal["test.tick"] = "test.tick"
    n: int = 0


@dataclass
class Service:
    """One service's outbox and inbox in a schema of its own, and its bus."""

    bus: Bus
    outbox: Table
    engine: AsyncEngine
    handled: list[int] = field(default_factory=list)
    claims: int = 0  # the relay's claims (UPDATE ... FOR UPDATE SKIP LOCKED), counted on its engine

    def fetches(self, result: str) -> float:
        value = REGISTRY.get_sample_value(
            "switchboard_outbox_fetches_total", {"service": self.bus.service, "result": result}
        )
        return value or 0.0


@dataclass
class Env:
    engine: AsyncEngine
    url: str
    settings: BusSettings
    topic: str
    schemas: list[str]
    engines: list[AsyncEngine]


@pytest.fixture
async def env(
    database_url: str, kafka_bootstrap_servers: str, kafka_client_env: dict[str, str], topic_prefix: str
) -> AsyncIterator[Env]:
    engine = make_engine(database_url, pool_size=4)
    settings = BusSettings.model_validate(
        {
            **kafka_client_env,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
        }
    )
    topic = f"wakeups_{uuid.uuid4().hex[:8]}.commands"
    await create_topics_async(
        kafka_bootstrap_servers, [settings.topic(topic), settings.topic(topic) + ".dlq"], 1
    )
    environment = Env(engine, database_url, settings, topic, [], [])
    try:
        yield environment
    finally:
        for own in environment.engines:
            await own.dispose()
        async with engine.begin() as connection:
            for schema in environment.schemas:
                await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def make_service(env: Env, *, consume: bool, settings: BusSettings | None = None) -> Service:
    schema = f"wake_{uuid.uuid4().hex[:8]}"
    outbox, inbox = make_bus_tables(MetaData(schema=schema))
    async with env.engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.run_sync(outbox.metadata.create_all)
    env.schemas.append(schema)
    engine = make_engine(env.url, pool_size=4)  # its own, so its statements can be counted
    env.engines.append(engine)
    bus = Bus(
        settings or env.settings,
        service=f"wake-{uuid.uuid4().hex[:6]}",
        engine=engine,
        outbox_table=outbox,
        inbox_table=inbox,
    )
    service = Service(bus, outbox, engine)

    def count_claims(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "SKIP LOCKED" in statement.upper():
            service.claims += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count_claims)
    if consume:

        async def record(message: Tick) -> None:
            service.handled.append(message.n)

        bus.subscribe(env.topic, Tick, record)
    return service


async def claims_while_trickling(env: Env, writer: Service, counted: Service, rows: int) -> int:
    """The claims `counted`'s relay ran while `writer` queued `rows` messages one transaction (so
    one NOTIFY) each, as handlers write them, each once the one before was relayed and handled;
    both services run for the while."""
    sessions = make_sessionmaker(env.engine)
    services = [writer] if counted is writer else [writer, counted]
    for service in services:
        await service.bus.start()
    try:
        before = counted.claims
        for n in range(rows):
            async with sessions() as session, session.begin():
                await writer.bus.publish_later(session, env.topic, Tick(n=n))
            await until(lambda n=n: len(writer.handled) > n, f"message {n} relayed and handled")
        return counted.claims - before
    finally:
        for service in reversed(services):
            await service.bus.stop()


async def outbox_rows(env: Env, outbox: Table) -> int:
    async with env.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(outbox)) or 0)


async def test_a_relay_is_not_woken_by_another_services_outbox(env: Env) -> None:
    """Before: every service's outbox is `outbox` (one NOTIFY channel) and every row was queued
    as `kafka-relay`, so each row any service queued woke every relay for an empty claim."""
    writer = await make_service(env, consume=True)
    idle = await make_service(env, consume=False)
    rows = 40
    idle_claims = await claims_while_trickling(env, writer, idle, rows)
    assert writer.handled == list(range(rows))
    assert writer.fetches("rows") >= 1 and idle.fetches("rows") == 0
    # Left: its own backoff poll (at most one a second once idle), whatever the other one queues.
    assert idle_claims <= 10, f"{idle_claims} empty claims for another service's {rows} rows"


async def test_a_row_queued_on_its_own_costs_one_claim_not_three(env: Env) -> None:
    """faststream-outbox claims again at once after any claim that found rows; for rows written
    one transaction at a time, as a campaign's are, that claim found nothing, and so did the one
    its worker woke when it took the row: three claims a row. Now the relay claims again only on
    a NOTIFY (bus.claims), and every row is still relayed."""
    service = await make_service(env, consume=True)
    rows = 40
    claims = await claims_while_trickling(env, service, service, rows)
    assert service.handled == list(range(rows))
    # One claim finds each row; a few more are the relay's backoff polls while a row is in flight.
    assert claims <= rows * 1.25, f"{claims} claims for {rows} rows"
    assert service.fetches("skipped") >= rows / 2
    # Wired to the relay's own LISTEN callback: a row queued a moment after a claim wakes the next.
    assert service.bus._claim_gate.notifications >= rows / 2


async def test_rows_queued_under_the_old_shared_queue_name_are_still_relayed_in_order(env: Env) -> None:
    """A release before per-outbox queues wrote `kafka-relay`: an upgrade must not strand them."""
    service = await make_service(env, consume=True)
    sessions = make_sessionmaker(env.engine)
    async with sessions() as session, session.begin():
        for n in range(3):
            old = Tick(n=n)
            await service.bus.outbox.publish(
                old.model_dump_json().encode(),
                queue="kafka-relay",
                session=session,
                headers={
                    "x-topic": env.settings.topic(env.topic),
                    "message_id": old.message_id,
                    "type": old.type,
                },
            )
        await service.bus.publish_later(session, env.topic, Tick(n=3))
    await service.bus.start()
    try:
        await until(lambda: len(service.handled) == 4, "every queued message")
        await until(lambda: _is_zero(outbox_rows(env, service.outbox)), "an empty outbox")
    finally:
        await service.bus.stop()
    assert service.handled == [0, 1, 2, 3]


async def _is_zero(rows: Awaitable[int]) -> bool:
    return await rows == 0


async def test_rows_a_dead_relay_had_leased_are_relayed_when_the_lease_ends(env: Env) -> None:
    """A relay killed between fetching rows (leasing them) and publishing them leaves them leased.
    They wait for BUS_RELAY_LEASE_S; faststream-outbox's default was 60 s, so after a SIGKILL of
    campaigns the gateway showed a campaign completed while recipients it had finished still read
    `dialing` for up to a minute (their updates sat in the dead relay's lease)."""
    service = await make_service(
        env, consume=True, settings=env.settings.model_copy(update={"bus_relay_lease_s": 3.0})
    )
    sessions = make_sessionmaker(env.engine)
    async with sessions() as session, session.begin():
        await service.bus.publish_later(session, env.topic, Tick(n=7))
    async with env.engine.begin() as connection:  # what the killed relay left: leased, not published
        await connection.execute(
            update(service.outbox).values(acquired_at=func.now(), acquired_token=uuid.uuid4())
        )
    await service.bus.start()
    try:
        await until(lambda: service.handled == [7], "the row the dead relay had leased, relayed")
        await until(lambda: _is_zero(outbox_rows(env, service.outbox)), "an empty outbox")
    finally:
        await service.bus.stop()


def test_a_relay_lease_is_ten_seconds_unless_set() -> None:
    assert BusSettings().bus_relay_lease_s == 10.0
