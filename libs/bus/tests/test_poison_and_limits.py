"""Poison messages, size limits, relay failures and dead-letter replay on the real broker and PostgreSQL."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import REGISTRY
from pydantic import Field
from sqlalchemy import Table, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bus import dlq
from bus.db import make_sessionmaker
from bus.inbox import claim
from bus.limits import MessageTooLarge, check_fits, fits, message_size, pack_to_fit
from bus.runtime import DEAD_LETTER_HEADROOM_BYTES, Bus
from bus.settings import BusSettings
from contracts.base import Command
from devinfra.broker import create_topics_async
from devinfra.bus_harness import wait_until

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0
# The shared poll (devinfra.bus_harness), with a deadline for a loaded CI machine.
until = functools.partial(wait_until, deadline_s=DEADLINE_S)


class DoThing(Command):
    type: Literal["test.do"] = "test.do"
    count: int = 0
    text: str = ""


class OtherThing(Command):
    type: Literal["test.other"] = "test.other"


TestCommand = Annotated[DoThing | OtherThing, Field(discriminator="type")]


@dataclass
class Env:
    engine: AsyncEngine
    outbox: Table
    inbox: Table
    settings: BusSettings
    topic: str  # logical name (a commands topic)
    handled: list[Any] = field(default_factory=list)

    @property
    def full_topic(self) -> str:
        return self.settings.topic(self.topic)


@pytest.fixture
async def env(
    bus_schema: Any, kafka_bootstrap_servers: str, kafka_client_env: dict[str, str], topic_prefix: str
) -> Env:
    made = await bus_schema("poison", pool_size=4)
    name, engine, outbox, inbox_table = made.name, made.engine, made.outbox, made.inbox
    settings = BusSettings.model_validate(
        {
            **kafka_client_env,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": topic_prefix,
            "BUS_RETRY_BACKOFF_MS": 10,
            "BUS_MAX_ATTEMPTS": 2,
        }
    )
    topic = f"{name}.commands"
    # One partition: every message below queues behind the one before it.
    await create_topics_async(
        kafka_bootstrap_servers, [settings.topic(topic), settings.topic(topic) + ".dlq"], 1
    )
    return Env(engine, outbox, inbox_table, settings, topic)


def make_bus(env: Env, handler: Callable[[Any], Awaitable[None]] | None = None) -> Bus:
    bus = Bus(
        env.settings,
        service=f"poison-{uuid.uuid4().hex[:6]}",
        engine=env.engine,
        outbox_table=env.outbox,
        inbox_table=env.inbox,
    )

    async def record(message: Any) -> None:
        env.handled.append(message)

    bus.subscribe(env.topic, TestCommand, handler or record)
    return bus


async def read_all(bootstrap: str, topic: str, at_least: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
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


def good(n: int) -> bytes:
    return DoThing(count=n).model_dump_json().encode()


# (bad value, extra headers, expected x-reason). Each is followed on the same partition by a good one.
POISON: list[tuple[str, bytes | None, list[tuple[str, bytes | None]], str]] = [
    ("not JSON", b"hello, world", [], "not-json"),
    (
        "JSON under a JSON content type that is not JSON",
        b"{oops",
        [("content-type", b"application/json")],
        "not-json",
    ),
    ("empty value", b"", [], "empty"),
    ("tombstone (null value)", None, [], "empty"),
    ("JSON array", b"[1, 2, 3]", [], "not-an-object"),
    ("JSON string", b'"test.do"', [], "not-an-object"),
    ("JSON null", b"null", [], "not-an-object"),
    ("type is a list (the issue's example)", b'{"type": ["x"]}', [], "type-invalid"),
    ("type is a number", b'{"type": 5}', [], "type-invalid"),
    ("type is null", b'{"type": null}', [], "type-invalid"),
    ("type is an object", b'{"type": {"a": 1}}', [], "type-invalid"),
    ("no type", b'{"message_id": "m1", "count": 1}', [], "type-missing"),
    ("unknown type on a commands topic", b'{"type": "test.nope"}', [], "type-unknown"),
    ("known type, field of the wrong type", b'{"type": "test.do", "count": "lots"}', [], "schema-invalid"),
    ("known type, message_id not a string", b'{"type": "test.do", "message_id": [1]}', [], "schema-invalid"),
    ("invalid UTF-8", b'\xff\xfe{"type": "test.do"}', [], "not-utf8"),
    ("nested too deeply", b"[" * 100_000 + b"]" * 100_000, [], "not-json"),
    (
        "huge headers",
        b'{"type": ["x"]}',
        [("junk", b"x" * 300_000), ("message_id", b"y" * 5000)],
        "type-invalid",
    ),
    ("header not UTF-8", b'{"type": 7}', [("type", b"\xff\xfe"), ("correlation_id", None)], "type-invalid"),
    # At the broker's limit: no room for the dead letter's headers, then not even for a few.
    ("1 MB of garbage", b"\xff" * 1_047_000, [], "not-utf8"),
    ("1 MiB of garbage", b"{" * 1_048_450, [], "not-json"),
]


async def test_every_poison_shape_reaches_the_dlq_and_the_partition_moves_on(env: Env) -> None:
    bus = make_bus(env)
    producer = AIOKafkaProducer(
        bootstrap_servers=env.settings.kafka_bootstrap_servers, max_request_size=4_000_000
    )
    await producer.start()
    try:
        for n, (_, value, headers, _) in enumerate(POISON):
            await producer.send_and_wait(env.full_topic, value, key=b"same-key", headers=headers)
            await producer.send_and_wait(env.full_topic, good(n), key=b"same-key")
        # A good message whose headers are not UTF-8 is handled all the same.
        await producer.send_and_wait(env.full_topic, good(len(POISON)), headers=[("x", b"\xff"), ("y", None)])
    finally:
        await producer.stop()
    with structlog.testing.capture_logs() as logs:
        await bus.start()
        try:
            await until(lambda: len(env.handled) == len(POISON) + 1, "every good message behind the poison")
            assert [m.count for m in env.handled] == list(range(len(POISON) + 1))
            letters = await read_all(
                env.settings.kafka_bootstrap_servers, env.full_topic + ".dlq", len(POISON)
            )
        finally:
            await bus.stop()
    at_limit = dict(letters[-1].headers)
    assert "x-error-trace" not in at_limit  # no room for all our headers, nor for the whole body:
    assert at_limit["x-body-truncated"] == b"500000 of 1048450 bytes"  # its head, and the partition moves on
    logged = [line for line in logs if line["event"] == "bus.message.dead_lettered"]
    assert [line["reason"] for line in logged] == [reason for *_, reason in POISON]
    assert all(line["log_level"] == "error" and line["topic"] == env.full_topic for line in logged)
    assert len(letters) == len(POISON)
    for letter, (what, value, _, reason) in zip(letters, POISON, strict=True):
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in letter.headers}
        assert headers["x-reason"] == reason, what
        assert headers["x-original-topic"] == env.full_topic, what
        assert headers["x-error"], what
        if "x-body-truncated" in headers:  # too big to carry with any header: its head
            assert value and len(value) == 1_048_450 and value.startswith(letter.value), what
        else:
            assert letter.value == (value or b""), what  # the original bytes, for inspection and replay
        assert sum(len(k) + len(v or b"") for k, v in letter.headers) < 20_000, what  # huge headers dropped
    dead = REGISTRY.get_sample_value(
        "switchboard_messages_dead_lettered_total",
        {"service": bus.service, "topic": env.full_topic, "reason": "type-invalid"},
    )
    assert dead == 6


async def test_a_failing_handler_is_retried_then_dead_lettered_and_the_partition_moves_on(env: Env) -> None:
    """A handler that keeps failing runs BUS_MAX_ATTEMPTS times, then its message is dead-lettered
    (original bytes, reason, attempts, origin); one that fails fewer times is retried into success
    and never dead-lettered; the messages behind both on the partition are handled, in order."""
    env.settings = env.settings.model_copy(update={"bus_max_attempts": 3})
    failures = {1: 99, 2: 2}  # message count -> how many times its handler fails before it succeeds
    calls: list[int] = []

    async def flaky(message: Any) -> None:
        calls.append(message.count)
        if calls.count(message.count) <= failures.get(message.count, 0):
            raise RuntimeError(f"try {calls.count(message.count)} of message {message.count} failed")
        env.handled.append(message)

    bus = make_bus(env, flaky)
    sent = [good(n) for n in (1, 2, 3)]
    producer = AIOKafkaProducer(bootstrap_servers=env.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for value in sent:
            await producer.send_and_wait(env.full_topic, value, key=b"same-key")
    finally:
        await producer.stop()
    await bus.start()
    try:
        await until(lambda: [m.count for m in env.handled] == [2, 3], "the messages behind the failing one")
        (letter,) = await read_all(env.settings.kafka_bootstrap_servers, env.full_topic + ".dlq", 1)
    finally:
        await bus.stop()
    assert calls == [1, 1, 1, 2, 2, 2, 3]
    assert letter.value == sent[0]  # the original bytes
    headers = {k: (v or b"").decode() for k, v in letter.headers}
    assert (headers["x-reason"], headers["x-attempts"], headers["x-failed-by"]) == (
        "handler-failed",
        "3",
        bus.service,
    )
    assert (headers["x-original-topic"], headers["x-original-offset"]) == (env.full_topic, "0")
    assert headers["x-error"].startswith("RuntimeError") and "try 3 of message 1" in headers["x-error"]
    dead = REGISTRY.get_sample_value(
        "switchboard_messages_dead_lettered_total",
        {"service": bus.service, "topic": env.full_topic, "reason": "handler-failed"},
    )
    assert dead == 1


async def test_an_unknown_type_on_an_events_topic_is_skipped_not_dead_lettered(env: Env) -> None:
    events = env.topic.replace(".commands", ".events")
    await create_topics_async(env.settings.kafka_bootstrap_servers, [env.settings.topic(events)], 1)
    bus = Bus(env.settings, service="skip-test", engine=env.engine, outbox_table=env.outbox)

    async def record(message: Any) -> None:
        env.handled.append(message)

    bus.subscribe(events, TestCommand, record)
    producer = AIOKafkaProducer(bootstrap_servers=env.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(env.settings.topic(events), b'{"type": "someone.elses"}')
        await producer.send_and_wait(env.settings.topic(events), b'{"type": ["x"]}')
        await producer.send_and_wait(env.settings.topic(events), good(1))
    finally:
        await producer.stop()
    await bus.start()
    try:
        await until(lambda: len(env.handled) == 1, "the good event")
    finally:
        await bus.stop()
    letters = await read_all(env.settings.kafka_bootstrap_servers, env.settings.topic(events) + ".dlq", 1)
    assert [dict(r.headers)["x-reason"] for r in letters] == [b"type-invalid"]  # not the unknown type


def test_the_size_check_measures_body_and_headers_against_the_limit() -> None:
    assert message_size(b"x" * 1000, {"type": "a.b"}) == 1000 + 4 + 3 + 512
    assert fits(b"x" * 1000, limit=1512)
    assert not fits(b"x" * 1001, limit=1512)
    assert not fits(b"x" * 1000, {"k": "v"}, limit=1512)  # headers count
    with pytest.raises(MessageTooLarge) as refused:
        check_fits(b"x" * 2_000_000, limit=1_000_000, what="agent.create message")
    assert refused.value.size == 2_000_512 and refused.value.limit == 1_000_000
    assert "1000000 bytes" in str(refused.value) and "BUS_MAX_MESSAGE_BYTES" in str(refused.value)


async def outbox_rows(env: Env) -> int:
    async with env.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(env.outbox)) or 0)


async def test_an_oversize_message_is_refused_before_it_reaches_the_outbox(env: Env) -> None:
    bus = make_bus(env)
    sessions = make_sessionmaker(env.engine)
    limit = env.settings.bus_max_message_bytes
    with pytest.raises(MessageTooLarge):
        async with sessions() as session, session.begin():
            await bus.publish_later(session, env.topic, DoThing(text="x" * limit))
    assert await outbox_rows(env) == 0
    async with sessions() as session, session.begin():  # just under the limit still travels
        await bus.publish_later(session, env.topic, DoThing(text="x" * (limit - 2000)))
    assert await outbox_rows(env) == 1


async def test_a_row_the_broker_can_never_take_is_dropped_logged_counted_and_reported(env: Env) -> None:
    """Before: the relay retried it for ever, silently, and everything after it waited."""
    bus = make_bus(env)
    failures: list[tuple[str, dict[str, str], BaseException]] = []

    async def on_failure(topic: str, headers: dict[str, str], exc: BaseException) -> None:
        failures.append((topic, headers, exc))

    bus.on_relay_failure(on_failure)
    sessions = make_sessionmaker(env.engine)
    big = DoThing(text="x" * 1_200_000, correlation_id="corr-big")
    async with sessions() as session, session.begin():
        # Written past the size check (as by an older release, or with a higher limit then).
        await bus.outbox.publish(
            big.model_dump_json().encode(),
            queue="kafka-relay",
            session=session,
            headers={"x-topic": env.full_topic, "message_id": big.message_id, "type": big.type},
        )
        await bus.publish_later(session, env.topic, DoThing(count=7))
    age = await bus.measure_outbox_age()
    assert age >= 0.0
    with structlog.testing.capture_logs() as logs:
        await bus.start()
        try:
            await until(lambda: [m.count for m in env.handled] == [7], "the message behind the oversize one")
            await until(lambda: len(failures) == 1, "the relay failure hook")
            await until(lambda: _is_zero(outbox_rows(env)), "an empty outbox")
            assert await bus.measure_outbox_age() == 0.0
        finally:
            await bus.stop()
    (dropped,) = [line for line in logs if line["event"] == "bus.outbox.relay_dropped"]
    assert dropped["log_level"] == "error" and dropped["message_id"] == big.message_id
    assert dropped["bytes"] > 1_200_000 and dropped["topic"] == env.full_topic
    topic, headers, exc = failures[0]
    assert topic == env.full_topic and headers["message_id"] == big.message_id
    assert "MessageSizeTooLarge" in type(exc).__name__
    permanent = REGISTRY.get_sample_value(
        "switchboard_outbox_relay_failures_total",
        {"service": bus.service, "topic": env.full_topic, "kind": "permanent"},
    )
    assert permanent == 1


async def test_a_backlog_is_relayed_in_order_and_deleted_in_batches(env: Env) -> None:
    """Before: one DELETE per relayed row (120 here); now one per batch of up to 50."""
    bus = make_bus(env)
    sessions = make_sessionmaker(env.engine)
    async with sessions() as session, session.begin():
        for n in range(120):
            await bus.publish_later(session, env.topic, DoThing(count=n), key="one-key")
    deletes: list[str] = []

    def count_outbox_deletes(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE") and env.outbox.name in statement:
            deletes.append(statement)

    event.listen(env.engine.sync_engine, "before_cursor_execute", count_outbox_deletes)
    await bus.start()
    try:
        await until(lambda: len(env.handled) == 120, "every queued message")
        await until(lambda: _is_zero(outbox_rows(env)), "an empty outbox")
    finally:
        await bus.stop()
        event.remove(env.engine.sync_engine, "before_cursor_execute", count_outbox_deletes)
    assert [m.count for m in env.handled] == list(range(120))  # one key: the order written
    assert 1 <= len(deletes) <= 10


async def _is_zero(rows: Awaitable[int]) -> bool:
    return await rows == 0


async def test_the_outbox_age_gauge_shows_an_unrelayed_row(env: Env) -> None:
    bus = make_bus(env)  # not started: nothing relays
    sessions = make_sessionmaker(env.engine)
    assert await bus.measure_outbox_age() == 0.0
    async with sessions() as session, session.begin():
        await session.execute(text("SELECT 1"))
        await bus.publish_later(session, env.topic, DoThing(count=1))
    async with env.engine.begin() as connection:
        await connection.execute(
            env.outbox.update().values(created_at=func.now() - text("interval '90 seconds'"))
        )
    assert await bus.measure_outbox_age() >= 90
    gauge = REGISTRY.get_sample_value("switchboard_outbox_oldest_age_seconds", {"service": bus.service})
    assert gauge is not None and gauge >= 90


async def test_the_broker_takes_the_largest_message_we_let_through(env: Env) -> None:
    """The start check reads message.max.bytes / max.message.bytes; the embedded broker (Tansu)
    reports no size configs, so what it really takes is measured here: our limit plus a dead
    letter's headroom must travel (a probe showed it takes 20 MB records too)."""
    bus = make_bus(env)
    limit = await bus.check_broker_limit([env.topic])
    assert limit is None or limit >= env.settings.bus_max_message_bytes + DEAD_LETTER_HEADROOM_BYTES
    largest = env.settings.bus_max_message_bytes + DEAD_LETTER_HEADROOM_BYTES
    producer = AIOKafkaProducer(
        bootstrap_servers=env.settings.kafka_bootstrap_servers, max_request_size=2 * largest
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(env.full_topic + ".dlq", b"x" * largest)
    finally:
        await producer.stop()
    (record,) = await read_all(env.settings.kafka_bootstrap_servers, env.full_topic + ".dlq", 1)
    assert record.offset == sent.offset and len(record.value) == largest


async def test_dead_letters_are_listed_shown_and_replayed_through_the_inbox(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = True
    sessions = make_sessionmaker(env.engine)

    async def handler(message: Any) -> None:
        if broken:
            raise RuntimeError("downstream is down")
        async with sessions() as session, session.begin():
            if await claim(session, env.inbox, "dlq-test", message.message_id):
                env.handled.append(message)

    bus = make_bus(env, handler)
    producer = AIOKafkaProducer(bootstrap_servers=env.settings.kafka_bootstrap_servers)
    await producer.start()
    message = DoThing(count=42, correlation_id="corr-42")
    try:
        await producer.send_and_wait(
            env.full_topic,
            message.model_dump_json().encode(),
            key=b"k",
            headers=[("message_id", message.message_id.encode()), ("type", b"test.do")],
        )
    finally:
        await producer.stop()
    await bus.start()
    try:
        dlq_topic = env.topic + ".dlq"
        letters: list[dlq.DeadLetter] = []

        async def dead_lettered() -> bool:
            letters[:] = await dlq.DeadLetters(env.settings).read(dlq_topic)
            return len(letters) == 1

        await until(dead_lettered, "the dead letter")
        assert letters[0].headers["x-reason"] == "handler-failed"

        assert await dlq.main(["list"], env.settings) == 0
        assert f"1  {env.full_topic}.dlq" in capsys.readouterr().out
        assert await dlq.main(["list", dlq_topic], env.settings) == 0
        listed = json.loads(capsys.readouterr().out.splitlines()[0])
        assert listed["reason"] == "handler-failed" and listed["message_id"] == message.message_id
        assert await dlq.main(["show", dlq_topic, listed["position"]], env.settings) == 0
        shown = json.loads(capsys.readouterr().out)
        assert json.loads(shown["body"])["count"] == 42
        assert shown["headers"]["x-error"].startswith("RuntimeError")
        assert await dlq.main(["show", dlq_topic, "0:999"], env.settings) == 1

        broken = False
        assert await dlq.main(["replay", dlq_topic, listed["position"]], env.settings) == 0
        await until(lambda: len(env.handled) == 1, "the replayed message")
        assert env.handled[0].message_id == message.message_id
        # A second replay reaches the handler again, and the inbox makes it a no-op.
        assert await dlq.main(["replay", dlq_topic, "--all"], env.settings) == 0
        await until(
            lambda: (
                REGISTRY.get_sample_value(
                    "switchboard_messages_handled_total",
                    {"service": bus.service, "topic": env.full_topic, "type": "test.do", "outcome": "ok"},
                )
                == 2
            ),
            "the second replay handled",
        )
        assert len(env.handled) == 1
    finally:
        await bus.stop()


def test_pack_to_fit_keeps_order_and_bounds_bytes_and_count() -> None:
    assert pack_to_fit([], budget=10, max_items=3) == []
    assert pack_to_fit([4, 4, 4, 4], budget=10, max_items=3) == [range(0, 2), range(2, 4)]
    assert pack_to_fit([1] * 7, budget=100, max_items=3) == [range(0, 3), range(3, 6), range(6, 7)]
    # An item over the budget gets a run of its own (the producer's size check then refuses it).
    assert pack_to_fit([3, 50, 3], budget=10, max_items=10) == [range(0, 1), range(1, 2), range(2, 3)]
    assert pack_to_fit([10, 10], budget=10, max_items=10) == [range(0, 1), range(1, 2)]


async def test_a_handler_whose_output_cannot_fit_is_dead_lettered_at_once(env: Env) -> None:
    sessions = make_sessionmaker(env.engine)
    calls: list[int] = []

    async def handler(message: Any) -> None:
        calls.append(message.count)
        async with sessions() as session, session.begin():
            await bus.publish_later(session, env.topic, DoThing(text="x" * 2_000_000))

    bus = make_bus(env, handler)
    producer = AIOKafkaProducer(bootstrap_servers=env.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(env.full_topic, good(5))
    finally:
        await producer.stop()
    await bus.start()
    try:
        (letter,) = await read_all(env.settings.kafka_bootstrap_servers, env.full_topic + ".dlq", 1)
    finally:
        await bus.stop()
    headers = dict(letter.headers)
    assert headers["x-reason"] == b"too-large" and headers["x-attempts"] == b"1"
    assert b"BUS_MAX_MESSAGE_BYTES" in headers["x-error"]
    assert calls == [5]  # not retried: it would be just as big every time
    assert await outbox_rows(env) == 0


CANARY = "jane.canary-7f3e@example.com"


async def test_a_dead_letter_names_what_failed_without_the_values(env: Env) -> None:
    """A handler's database error and a message its schema refuses are dead-lettered (and logged)
    with their class, fields, SQLSTATE and statement, never the values: here a customer's e-mail,
    which asyncpg quotes ("invalid input for query argument $1: '…'") and pydantic names."""
    table = f'"{env.outbox.schema}".canary_check'
    async with env.engine.begin() as connection:
        await connection.execute(text(f"CREATE TABLE {table} (n integer, email varchar(8))"))

    async def store(message: Any) -> None:
        async with env.engine.begin() as connection:
            statement = text(f"INSERT INTO {table} (n, email) VALUES (:n, :email)")  # noqa: S608
            if message.count == 1:  # a driver-side error: the value in the wrong type
                await connection.execute(statement, {"n": message.text, "email": "x"})
            else:  # a server-side error naming the column and type
                await connection.execute(statement, {"n": 1, "email": message.text})

    bus = make_bus(env, store)
    producer = AIOKafkaProducer(bootstrap_servers=env.settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for value in (
            DoThing(count=1, text=CANARY).model_dump_json().encode(),
            DoThing(count=2, text=CANARY).model_dump_json().encode(),
            json.dumps({"type": "test.do", "count": CANARY}).encode(),
        ):
            await producer.send_and_wait(env.full_topic, value, key=b"k")
    finally:
        await producer.stop()
    with structlog.testing.capture_logs() as logs:
        await bus.start()
        try:
            letters = await read_all(env.settings.kafka_bootstrap_servers, env.full_topic + ".dlq", 3)
        finally:
            await bus.stop()
    headers = [{k: (v or b"").decode() for k, v in letter.headers} for letter in letters]
    assert [h["x-reason"] for h in headers] == ["handler-failed", "handler-failed", "schema-invalid"]
    for h in headers:
        assert CANARY not in json.dumps(h), h
    assert "DBAPIError(Error: invalid input for query argument $1: ?" in headers[0]["x-error"]
    assert "sqlstate=22001" in headers[1]["x-error"] and "INSERT INTO" in headers[1]["x-error"]
    assert "count: int_parsing" in headers[2]["x-error"]
    assert "sqlalchemy.exc.DBAPIError" in headers[0]["x-error-trace"]
    assert CANARY not in json.dumps(logs, default=str)
    assert any(line["event"] == "bus.handler.retry" for line in logs)
