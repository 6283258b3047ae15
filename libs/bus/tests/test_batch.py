"""Batch consumption (`Bus.subscribe(batch=True)`) on the real broker and PostgreSQL.

The handler is an ordinary per-message one: a transaction scope that claims the message id in the
inbox and writes an effect row. `effects` has no unique key, so a message applied twice shows as
two rows; each row records the transaction it was written in (`txid_current()`), so a batch that
shared one transaction shows as several rows with one txid.

Run as a script (`python test_batch.py <json>`), this module is the consumer process the crash test
kills with SIGKILL in the middle of a batch.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, Text, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import batch
from bus.db import make_engine, make_sessionmaker
from bus.runtime import Bus
from bus.settings import BusSettings
from bus.tables import make_bus_tables
from bus.uow import TransactionScope
from contracts.base import Command
from devinfra.broker import create_topics_async
from devinfra.bus_harness import wait_until

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
# The shared poll (devinfra.bus_harness), with a deadline for a loaded CI machine.
until = functools.partial(wait_until, deadline_s=DEADLINE_S)


class Step(Command):
    type: Literal["test.step"] = "test.step"
    n: int
    key: str


@dataclass
class Tables:
    outbox: Table
    inbox: Table
    effects: Table


def make_tables(schema: str) -> Tables:
    outbox, inbox = make_bus_tables(MetaData(schema=schema))
    effects = Table(
        "effects",
        inbox.metadata,
        Column("message_id", Text, nullable=False),  # no unique key: a double effect is two rows
        Column("n", Integer, nullable=False),
        Column("key", Text, nullable=False),
        Column("txid", BigInteger, nullable=False),
        Column("seq", BigInteger, primary_key=True, autoincrement=True),  # the order written
    )
    return Tables(outbox, inbox, effects)


def scope_class(tables: Tables) -> type[TransactionScope]:
    class Scope(TransactionScope):
        inbox_table = tables.inbox
        consumer = "batch-test"

    return Scope


def make_handler(
    tables: Tables,
    sessions: async_sessionmaker[AsyncSession],
    bus: Bus,
    *,
    before_effect: Callable[[Step], Awaitable[None]] | None = None,
    after_effect: Callable[[Step], Awaitable[None]] | None = None,
    after_scope: Callable[[Step], None] | None = None,
) -> Callable[[Step], Awaitable[None]]:
    scope = scope_class(tables)

    async def handle(message: Step) -> None:
        if before_effect is not None:
            await before_effect(message)
        async with scope(sessions, bus) as uow:
            if not await uow.claim(message.message_id):
                return
            await uow.session.execute(
                insert(tables.effects).values(
                    message_id=message.message_id,
                    n=message.n,
                    key=message.key,
                    txid=select(func.txid_current()).scalar_subquery(),
                )
            )
            if after_effect is not None:
                await after_effect(message)
        if after_scope is not None:
            after_scope(message)

    return handle


def make_settings(bootstrap: str, client_env: dict[str, str], prefix: str) -> BusSettings:
    return BusSettings.model_validate(
        {
            **client_env,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": prefix,
            "BUS_RETRY_BACKOFF_MS": 10,
            "BUS_MAX_ATTEMPTS": 2,
        }
    )


@dataclass
class Env:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tables: Tables
    settings: BusSettings
    schema: str
    topic: str  # logical name
    service: str  # names the consumer group

    @property
    def full_topic(self) -> str:
        return self.settings.topic(self.topic)

    def bus(self, service: str | None = None, settings: BusSettings | None = None) -> Bus:
        return Bus(
            settings or self.settings,
            service=service or self.service,
            engine=self.engine,
            outbox_table=self.tables.outbox,
            inbox_table=self.tables.inbox,
        )

    async def effects(self) -> list[Any]:
        async with self.engine.connect() as connection:
            return list(
                await connection.execute(select(self.tables.effects).order_by(self.tables.effects.c.seq))
            )

    async def send(self, steps: list[Step], *, partitions: dict[str, int] | None = None) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            for step in steps:
                await producer.send_and_wait(
                    self.full_topic,
                    step.model_dump_json().encode(),
                    key=step.key.encode(),
                    partition=(partitions or {}).get(step.key),
                    headers=[("message_id", step.message_id.encode()), ("type", step.type.encode())],
                )
        finally:
            await producer.stop()


@pytest.fixture
async def env(
    database_url: str, kafka_bootstrap_servers: str, kafka_client_env: dict[str, str], topic_prefix: str
) -> AsyncIterator[Env]:
    schema = f"batch_{uuid.uuid4().hex[:8]}"
    tables = make_tables(schema)
    engine = make_engine(database_url, pool_size=4)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.run_sync(tables.inbox.metadata.create_all)
    settings = make_settings(kafka_bootstrap_servers, kafka_client_env, topic_prefix)
    topic = f"{schema}.commands"
    await create_topics_async(
        kafka_bootstrap_servers, [settings.topic(topic), settings.topic(topic) + ".dlq"], 2
    )
    try:
        yield Env(engine, make_sessionmaker(engine), tables, settings, schema, topic, f"batch-{schema}")
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


def steps(count: int, keys: tuple[str, ...] = ("a", "b")) -> list[Step]:
    return [Step(n=n, key=keys[n % len(keys)]) for n in range(count)]


async def committed_offsets(env: Env, group: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env.settings.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        out = {}
        for partition in (0, 1):
            offset = await consumer.committed(TopicPartition(env.full_topic, partition))
            out[partition] = offset if offset is not None else -1
        return out
    finally:
        await consumer.stop()


def assert_each_once_in_order(rows: list[Any], sent: list[Step]) -> None:
    assert sorted(row.message_id for row in rows) == sorted(s.message_id for s in sent)  # once each
    for key in {s.key for s in sent}:
        assert [row.n for row in rows if row.key == key] == [s.n for s in sent if s.key == key], key


async def test_a_batch_shares_one_transaction_and_commits_its_offsets_after_it(env: Env) -> None:
    # Two keys on two partitions, sent before the consumer starts: fetched together.
    sent = steps(40)
    await env.send(sent, partitions={"a": 0, "b": 1})
    # `after_commit` callbacks: each checked, as soon as it runs, against what is committed.
    told: asyncio.Queue[int] = asyncio.Queue()
    seen_committed: list[bool] = []

    async def check_told() -> None:
        while True:
            n = await told.get()
            seen_committed.append(n in {row.n for row in await env.effects()})

    def tell(message: Step) -> None:
        batch.after_commit(lambda: told.put_nowait(message.n))

    checker = asyncio.create_task(check_told())
    bus = env.bus()
    bus.subscribe(env.topic, Step, make_handler(env.tables, env.sessions, bus, after_scope=tell), batch=True)
    await bus.start()
    try:
        await until(lambda: _count(env, 40), "every message applied")
        await until(lambda: _true(len(seen_committed) == 40), "every after-commit callback checked")
    finally:
        await bus.stop()
        checker.cancel()
    assert seen_committed == [True] * 40  # each told only once its effect was committed
    rows = await env.effects()
    assert_each_once_in_order(rows, sent)
    transactions = {row.txid for row in rows}
    assert len(transactions) < len(rows) / 4  # a batch of messages per transaction, not one each
    offsets = await committed_offsets(env, env.settings.topic(env.service))
    assert offsets == {0: 20, 1: 20}  # everything applied is committed, nothing beyond it


async def test_a_poison_message_in_a_batch_fails_alone_and_the_others_take_effect_once(env: Env) -> None:
    sent = steps(12, keys=("a",))
    poison = sent[5]
    calls: list[int] = []

    async def record_call(message: Step) -> None:
        calls.append(message.n)

    told: list[int] = []

    def tell(message: Step) -> None:
        batch.after_commit(lambda: told.append(message.n))

    async def fail_poison(message: Step) -> None:
        if message.n == poison.n:  # after its own effect was written: that must be undone too
            raise RuntimeError("poison")

    await env.send(sent)
    bus = env.bus()
    bus.subscribe(
        env.topic,
        Step,
        make_handler(
            env.tables,
            env.sessions,
            bus,
            before_effect=record_call,
            after_effect=fail_poison,
            after_scope=tell,
        ),
        batch=True,
    )
    await bus.start()
    try:
        await until(lambda: _count(env, 11), "the eleven good messages")
        letters = await read_all(env, env.full_topic + ".dlq", 1)
    finally:
        await bus.stop()
    rows = await env.effects()
    assert_each_once_in_order(rows, [s for s in sent if s is not poison])
    assert [json.loads(letter.value)["message_id"] for letter in letters] == [poison.message_id]
    headers = {k: (v or b"").decode() for k, v in letters[0].headers}
    assert headers["x-reason"] == "handler-failed" and headers["x-attempts"] == "2"
    # The batch try, then BUS_MAX_ATTEMPTS tries alone; never again (no loop), and no other
    # message was run more than twice (its batch try, rolled back, and its own).
    assert calls.count(poison.n) == 3
    assert told == [s.n for s in sent if s is not poison]  # once each: not for the rolled-back try
    assert all(calls.count(s.n) <= 2 for s in sent if s is not poison)
    fallbacks = REGISTRY.get_sample_value(
        "switchboard_message_batch_fallbacks_total", {"service": bus.service, "topic": env.full_topic}
    )
    assert fallbacks == 1
    offsets = await committed_offsets(env, env.settings.topic(env.service))
    assert offsets[0] == 12


async def test_a_message_that_must_be_alone_cuts_the_batch_and_keeps_the_order(env: Env) -> None:
    """`alone`: messages whose handler calls out are never in a batch's transaction (a rollback
    of the batch would repeat the call); the batch is cut around them, in order."""
    sent = steps(12, keys=("a",))
    solo = {4, 8}
    outside_batch: dict[int, bool] = {}

    async def where(message: Step) -> None:
        outside_batch[message.n] = batch.current() is None

    await env.send(sent)
    bus = env.bus()
    bus.subscribe(
        env.topic,
        Step,
        make_handler(env.tables, env.sessions, bus, before_effect=where),
        batch=True,
        alone=lambda message: message.n in solo,
    )
    await bus.start()
    try:
        await until(lambda: _count(env, 12), "every message applied")
    finally:
        await bus.stop()
    rows = await env.effects()
    assert_each_once_in_order(rows, sent)
    assert all(outside_batch[n] for n in solo)
    txids = [row.txid for row in rows]
    for n in solo:  # its own transaction, shared with no other message
        assert txids.count(txids[n]) == 1, txids
    assert len(set(txids)) < len(rows) - 2, txids  # the others still in batches
    assert not all(outside_batch[n] for n in range(12) if n not in solo)


async def test_a_batch_is_cut_into_transactions_of_at_most_the_byte_cap(env: Env) -> None:
    """`BUS_BATCH_MAX_BYTES`: a fetch of 100 bulk events (1,000 recipients each) had decoded
    ~100 MiB in one transaction. Runs are cut before the message that would pass the cap; each
    message still takes effect once, in order, and the offsets are committed after the last run."""
    sent = steps(30, keys=("a",))
    size = max(len(step.model_dump_json()) for step in sent)
    await env.send(sent, partitions={"a": 0})
    bus = env.bus(settings=env.settings.model_copy(update={"bus_batch_max_bytes": 3 * size}))
    bus.subscribe(env.topic, Step, make_handler(env.tables, env.sessions, bus), batch=True)
    await bus.start()
    try:
        await until(lambda: _count(env, 30), "every message applied")
    finally:
        await bus.stop()
    rows = await env.effects()
    assert_each_once_in_order(rows, sent)
    per_transaction = Counter(row.txid for row in rows)
    assert max(per_transaction.values()) <= 3, per_transaction  # 30 in one fetch before the cap
    assert max(per_transaction.values()) > 1, per_transaction  # still batches
    offsets = await committed_offsets(env, env.settings.topic(env.service))
    assert offsets[0] == 30


async def test_redelivered_messages_have_no_second_effect(env: Env) -> None:
    """A batch redelivered after its transaction committed (here: a second consumer group reading
    the same records, as after a crash before the offset commit), and a message sent twice within
    one batch: the inbox claims in the shared transaction keep every effect single."""
    sent = steps(20)
    await env.send([*sent[:10], sent[3], *sent[10:]], partitions={"a": 0, "b": 0})
    first = env.bus()
    handler = make_handler(env.tables, env.sessions, first)
    await consume_until(first, env, handler, lambda: _count(env, 20), "the first delivery")
    again = env.bus(service=f"{env.service}-again")
    seen: list[int] = []

    async def note(message: Step) -> None:
        seen.append(message.n)

    again.subscribe(
        env.topic, Step, make_handler(env.tables, env.sessions, again, before_effect=note), batch=True
    )
    await again.start()
    try:

        async def all_seen() -> bool:
            return len(seen) >= 21

        await until(all_seen, "the redelivery")
    finally:
        await again.stop()
    assert_each_once_in_order(await env.effects(), sent)


async def test_a_batch_claims_all_its_messages_with_one_statement(env: Env) -> None:
    sent = steps(40)
    await env.send(sent, partitions={"a": 0, "b": 1})
    claims: list[str] = []

    def count_claims(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(f"INSERT INTO {env.schema}.inbox"):
            claims.append(statement)

    event.listen(env.engine.sync_engine, "before_cursor_execute", count_claims)
    bus = env.bus()
    try:
        handler = make_handler(env.tables, env.sessions, bus)
        await consume_until(bus, env, handler, lambda: _count(env, 40), "every message applied")
    finally:
        event.remove(env.engine.sync_engine, "before_cursor_execute", count_claims)
    rows = await env.effects()
    assert_each_once_in_order(rows, sent)
    # One claim per transaction (a batch, or a message handled alone), not one per message.
    assert len(claims) == len({row.txid for row in rows}) < len(rows) / 4
    assert sorted(await _claimed(env)) == sorted(s.message_id for s in sent)


async def test_a_message_its_handler_did_not_claim_is_not_left_claimed(env: Env) -> None:
    """The batch claims every message at once; one whose handler returned without claiming (it had
    nothing to do) must read as unprocessed afterwards, as it would outside a batch."""
    sent = steps(20)
    await env.send(sent, partitions={"a": 0, "b": 1})
    scope = scope_class(env.tables)

    async def handle(message: Step) -> None:
        async with scope(env.sessions, bus) as uow:
            if message.n % 3 == 0:
                return  # nothing to do: no claim
            if await uow.claim(message.message_id):
                await uow.session.execute(
                    insert(env.tables.effects).values(
                        message_id=message.message_id, n=message.n, key=message.key, txid=0
                    )
                )

    bus = env.bus()
    claimed = [s for s in sent if s.n % 3]

    async def all_committed() -> bool:
        return await committed_offsets(env, env.settings.topic(env.service)) == {0: 10, 1: 10}

    await consume_until(bus, env, handle, all_committed, "every message handled and its offset committed")
    assert sorted(await _claimed(env)) == sorted(s.message_id for s in claimed)


async def test_rows_gathered_by_the_handlers_of_a_batch_are_written_once_before_its_commit(env: Env) -> None:
    sent = steps(40)
    await env.send(sent, partitions={"a": 0, "b": 1})
    scope = scope_class(env.tables)
    writes: list[list[int]] = []  # what each write got
    alone: list[int] = []  # messages handled outside a batch

    async def handle(message: Step) -> None:
        async with scope(env.sessions, bus) as uow:
            if not await uow.claim(message.message_id):
                return
            row = {"message_id": message.message_id, "n": message.n, "key": message.key, "txid": 0}

            async def write(rows: list[dict[str, Any]]) -> None:
                writes.append([r["n"] for r in rows])
                await uow.session.execute(insert(env.tables.effects).values(rows))

            if not batch.gather("effects", [row], write):
                alone.append(message.n)
                await write([row])

    bus = env.bus()
    await consume_until(bus, env, handle, lambda: _count(env, 40), "every message applied")
    assert_each_once_in_order(await env.effects(), sent)  # written, and committed with the batch
    assert sorted(n for w in writes for n in w) == list(range(40))
    assert len(writes) < 10  # one write per batch, not one per message
    assert all(len(w) > 1 or w[0] in alone for w in writes)  # a write of one: a message alone


async def _claimed(env: Env) -> list[str]:
    async with env.engine.connect() as connection:
        return list(await connection.scalars(select(env.tables.inbox.c.message_id)))


async def test_a_consumer_killed_in_the_middle_of_a_batch_leaves_no_effect_and_no_gap(
    env: Env, tmp_path: Path, kafka_client_env: dict[str, str]
) -> None:
    """SIGKILL while the batch's transaction is open (six messages applied in it, the seventh
    handler stuck): nothing of it is visible, no offset was committed, and the next consumer of the
    group applies every message once, in order per key."""
    sent = steps(30)
    await env.send(sent, partitions={"a": 0, "b": 1})
    marker = tmp_path / "stuck"
    config = {
        "bootstrap": env.settings.kafka_bootstrap_servers,
        "client_env": kafka_client_env,
        "prefix": env.settings.kafka_topic_prefix,
        "database_url": env.engine.url.render_as_string(hide_password=False),
        "schema": env.schema,
        "topic": env.topic,
        "service": env.service,
        "stick_at": 6,
        "marker": str(marker),
    }
    worker = subprocess.Popen([sys.executable, __file__, json.dumps(config)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not marker.exists():
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker never got stuck"
            await asyncio.sleep(0.05)  # polling with a deadline
        assert int(marker.read_text()) >= 1  # messages applied in the open transaction before it
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=DEADLINE_S)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert await env.effects() == []
    assert await committed_offsets(env, env.settings.topic(env.service)) == {0: -1, 1: -1}
    bus = env.bus()
    bus.subscribe(env.topic, Step, make_handler(env.tables, env.sessions, bus), batch=True)
    await bus.start()
    try:
        await until(lambda: _count(env, 30), "every message after the crash")
    finally:
        await bus.stop()
    assert_each_once_in_order(await env.effects(), sent)


async def consume_until(
    bus: Bus,
    env: Env,
    handler: Callable[[Step], Awaitable[None]],
    done: Callable[[], Awaitable[bool]],
    what: str,
) -> None:
    """Run `handler` as a batch subscription of `bus` until `done()`, then stop the bus."""
    bus.subscribe(env.topic, Step, handler, batch=True)
    await bus.start()
    try:
        await until(done, what)
    finally:
        await bus.stop()


async def _true(held: bool) -> bool:
    return held


async def _count(env: Env, at_least: int) -> bool:
    return len(await env.effects()) >= at_least


async def read_all(env: Env, topic: str, at_least: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=env.settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < at_least:
            assert time.monotonic() < deadline, f"{topic}: {len(records)} of {at_least} records"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def _work_until_killed(config: dict[str, Any]) -> None:
    """The crash test's consumer: applies messages in a batch until the `stick_at`-th, then hangs
    with the batch's transaction open and says so in `marker` (how many it applied)."""
    tables = make_tables(config["schema"])
    engine = make_engine(config["database_url"], pool_size=2)
    settings = make_settings(config["bootstrap"], config["client_env"], config["prefix"])
    bus = Bus(
        settings,
        service=config["service"],
        engine=engine,
        outbox_table=tables.outbox,
        inbox_table=tables.inbox,
    )
    applied = 0

    async def stick(message: Step) -> None:
        nonlocal applied
        applied += 1
        if applied == config["stick_at"]:
            Path(config["marker"]).write_text(str(applied - 1))
            await asyncio.Event().wait()  # stuck inside the handler until killed

    bus.subscribe(
        config["topic"],
        Step,
        make_handler(tables, make_sessionmaker(engine), bus, before_effect=stick),
        batch=True,
    )
    await bus.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_work_until_killed(json.loads(sys.argv[1])))
