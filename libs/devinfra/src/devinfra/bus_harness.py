"""What a service's integration suite needs to drive that service through the real broker.

A suite runs one service in-process and talks to it the way the rest of Switchboard does: it
publishes commands on the service's topic and reads everything the service publishes back. Each
suite's conftest subclasses :class:`BusHarness` with what only that service has (its simulator, its
tables, the marker command it answers) and builds it with :meth:`BusHarness.connected`.

Waiting is always polling with a deadline (:func:`wait_until`, :func:`wait_for`), never a sleep of a
guessed length: a guess is either slow or flaky, a deadline is neither.

Nothing here imports a service, ``bus`` or ``contracts``: the message is anything shaped like
:class:`Outgoing`, and the suite hands over ``bus.runtime.message_headers`` so the headers are the
ones the service's own producers write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, Self, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from .broker import create_topics
from .postgres import asyncpg_dsn

if TYPE_CHECKING:
    import pytest

__all__ = [
    "DEADLINE_S",
    "BusHarness",
    "Outgoing",
    "Record",
    "ServiceSettings",
    "collecting",
    "matching",
    "prepared",
    "schema_text",
    "service_env",
    "started",
    "wait_for",
    "wait_until",
]

#: How long a test waits for the service before it fails: generous for a loaded CI machine, still
#: short enough that a lost message fails the test rather than the pytest timeout.
DEADLINE_S = 20.0
#: Between two looks: small next to any latency the tests measure, large enough not to spin.
POLL_S = 0.02

#: One message read off the bus, as the JSON object it was published as.
Record = dict[str, Any]


class Outgoing(Protocol):
    """What the harness needs of a message it publishes (``contracts.base.Message`` is one)."""

    @property
    def message_id(self) -> str: ...

    @property
    def correlation_id(self) -> str | None: ...

    def model_dump_json(self) -> str: ...


class ServiceSettings(Protocol):
    """A service's settings (``bus.settings.BusSettings``): where the broker is, and the topic names."""

    @property
    def kafka_bootstrap_servers(self) -> str: ...

    def topic(self, name: str) -> str:
        """The suite's prefixed name of the logical topic ``name``."""
        ...


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


M = TypeVar("M", bound=Outgoing)
BoxT = TypeVar("BoxT", bound=Startable)
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def service_env(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The settings every service takes from this suite's broker, database and topic prefix.

    A suite's ``settings`` fixture starts from these and adds its own. They are looked up through
    ``request`` so that the suite's own ``isolated`` ``database_url`` and ``topic_prefix`` are the
    ones used, not the session-wide ones.
    """
    return {
        **request.getfixturevalue("kafka_client_env"),
        "DATABASE_URL": request.getfixturevalue("database_url"),
        "KAFKA_BOOTSTRAP_SERVERS": request.getfixturevalue("kafka_bootstrap_servers"),
        "KAFKA_TOPIC_PREFIX": request.getfixturevalue("topic_prefix"),
        "BUS_RETRY_BACKOFF_MS": 50,  # a retried message costs a test 50 ms, not the default 200
        # A suite's containers live for the whole session, beside the e2e stacks on one server
        # (max_connections 100): few idle connections each; load still opens the overflow.
        "DATABASE_POOL_SIZE": 2,
    }


def prepared(settings: SettingsT, migrate: Callable[[SettingsT], None], *topic_names: str) -> SettingsT:
    """``settings``, once its topics (logical names) exist and ``migrate`` has run on its database.

    A deploy does both before the service starts; the service itself neither creates topics nor,
    when bootstrapped in-process, migrates.
    """
    create_topics(settings.kafka_bootstrap_servers, [settings.topic(n) for n in topic_names])
    migrate(settings)
    return settings


async def _poll(
    check: Callable[[], bool | Awaitable[bool]], failure: Callable[[], str], deadline_s: float
) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        held = check()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(failure())
        await asyncio.sleep(POLL_S)  # polling with a deadline


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], what: str, *, deadline_s: float = DEADLINE_S
) -> None:
    """Return once ``check()`` (a plain or an async probe) holds; fail naming ``what`` at the deadline."""
    await _poll(check, lambda: f"timed out waiting for {what}", deadline_s)


def matching(
    records: Iterable[Record], predicate: Callable[[Record], bool] | None = None, /, **fields: Any
) -> list[Record]:
    """The records that satisfy ``predicate`` and carry each of ``fields`` with exactly that value."""
    return [
        r
        for r in records
        if (predicate is None or predicate(r)) and all(r.get(k) == v for k, v in fields.items())
    ]


async def wait_for(
    records: list[Record],
    predicate: Callable[[Record], bool] | None = None,
    /,
    *,
    what: str,
    deadline_s: float = DEADLINE_S,
    **fields: Any,
) -> Record:
    """The first record :func:`matching` in ``records`` once one arrives; fails with ``no <what>``.

    ``records`` is a list that :func:`collecting` keeps appending to, so it is read afresh each look.
    """
    await _poll(lambda: bool(matching(records, predicate, **fields)), lambda: f"no {what}", deadline_s)
    return matching(records, predicate, **fields)[0]  # append-only: still the first match


@asynccontextmanager
async def collecting(bootstrap_servers: str, sinks: Mapping[str, list[Record]]) -> AsyncIterator[None]:
    """While the block runs, every record on each topic of ``sinks`` is appended to its list.

    The topics are read from the earliest offset without a consumer group, so nothing the service
    published before the suite looked is missed, and no group join delays the first record.
    """
    consumer = AIOKafkaConsumer(
        *sinks,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()

    async def collect() -> None:
        async for record in consumer:
            sinks[record.topic].append(json.loads(record.value or b"{}"))

    task = asyncio.create_task(collect())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@asynccontextmanager
async def started(box: BoxT) -> AsyncIterator[BoxT]:
    """``box`` (a service's bootstrapped container) started for the block and stopped after it."""
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


async def schema_text(database_url: str, schema: str) -> str:
    """Every row of every table in ``schema``, and the outbox payloads decoded, as one string.

    Tests assert that a secret is stored nowhere in the clear, not even in a message still waiting
    in the outbox; one string to search is that assertion.
    """
    import asyncpg

    def quoted(identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        names = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        chunks: list[str] = []
        for (name,) in names:
            table = f"{quoted(schema)}.{quoted(name)}"
            rows = await connection.fetch(f"SELECT t::text FROM {table} t")  # noqa: S608 - quoted names
            chunks.extend(r[0] for r in rows)
        outbox = f"{quoted(schema)}.outbox"
        payloads = await connection.fetch(f"SELECT convert_from(payload, 'UTF8') FROM {outbox}")  # noqa: S608
        chunks.extend(r[0] for r in payloads)
    finally:
        await connection.close()
    return "\n".join(chunks)


@dataclass(kw_only=True)
class BusHarness(Generic[M]):
    """Publishes like any producer would and keeps every event the service publishes back.

    Subclass it in a suite's conftest (``@dataclass(kw_only=True)``) for what only that service has,
    set the two topics, override :meth:`marker` to use :meth:`deliver` and :meth:`one`, and build it
    with :meth:`connected`.
    """

    #: Where :meth:`publish` sends by default, and what :attr:`events` collects (logical names).
    commands_topic: ClassVar[str]
    events_topic: ClassVar[str]

    settings: ServiceSettings
    producer: AIOKafkaProducer
    #: ``bus.runtime.message_headers``: the headers the service's own producers write.
    headers: Callable[[M], Mapping[str, str]]
    #: Every event read so far, in order.
    events: list[Record] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def connected(cls, settings: ServiceSettings, **fields: Any) -> AsyncIterator[Self]:
        """A harness (``fields`` are the rest of its fields) with a started producer, collecting."""
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            harness = cls(settings=settings, producer=producer, **fields)
            async with collecting(settings.kafka_bootstrap_servers, harness.sinks()):
                yield harness
        finally:
            await producer.stop()

    def sinks(self) -> dict[str, list[Record]]:
        """Which list each topic read is appended to (prefixed names); extend it to read more."""
        return {self.settings.topic(self.events_topic): self.events}

    async def publish(self, message: M, topic: str | None = None, key: str = "k") -> None:
        headers = [(k, v.encode()) for k, v in self.headers(message).items()]
        await self.producer.send_and_wait(
            self.settings.topic(topic or self.commands_topic),
            message.model_dump_json().encode(),
            key=key.encode(),
            headers=headers,
        )

    async def publish_together(self, messages: Sequence[M], topic: str | None = None, key: str = "k") -> None:
        """Put `messages` on one partition as ONE Kafka record batch: a consumer's fetch returns
        them together, so a batch subscriber (`Bus.subscribe(batch=True)`) handles them in one
        batch (up to `BUS_BATCH_MAX_RECORDS`)."""
        name = self.settings.topic(topic or self.commands_topic)
        records = self.producer.create_batch()
        for message in messages:
            appended = records.append(
                timestamp=None,
                key=key.encode(),
                value=message.model_dump_json().encode(),
                headers=[(k, v.encode()) for k, v in self.headers(message).items()],
            )
            if appended is None:
                raise ValueError(f"{len(messages)} messages do not fit in one record batch")
        records.close()
        partition = min(await self.producer.partitions_for(name))
        await (await self.producer.send_batch(records, name, partition=partition))

    def outcomes(self, command_id: str) -> list[Record]:
        """The events caused by the command ``command_id`` (there should be exactly one)."""
        return [e for e in self.events if e.get("causation_id") == command_id]

    def matching(self, predicate: Callable[[Record], bool] | None = None, /, **fields: Any) -> list[Record]:
        return matching(self.events, predicate, **fields)

    async def wait_for(
        self,
        predicate: Callable[[Record], bool] | None = None,
        /,
        *,
        deadline_s: float = DEADLINE_S,
        what: str = "",
        **fields: Any,
    ) -> Record:
        """The first event that matches (see :func:`matching`), once it has arrived."""
        what = f"event {what}" if what else f"event matching {fields}"
        return await wait_for(self.events, predicate, what=what, deadline_s=deadline_s, **fields)

    async def until(self, check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
        await wait_until(check, what)

    def marker(self) -> M:
        """A command the service answers with exactly one outcome and no side effect worth noting."""
        raise NotImplementedError(f"{type(self).__name__} has no marker command: deliver() needs one")

    async def deliver(self, *commands: M) -> dict[str, list[Record]]:
        """Publish in order on one partition, then a marker; wait until all have outcomes.

        The marker is handled after every command before it (same key, same partition), so by the
        time its outcome arrives a duplicate outcome of an earlier command would have been written.
        """
        marker = self.marker()
        for command in (*commands, marker):
            await self.publish(command)
        wanted = {c.message_id for c in (*commands, marker)}
        await _poll(
            lambda: all(self.outcomes(i) for i in wanted),
            lambda: f"no outcome for {[i for i in wanted if not self.outcomes(i)]}",
            DEADLINE_S,
        )
        return {c.message_id: self.outcomes(c.message_id) for c in commands}

    async def one(self, command: M) -> Record:
        """The one outcome of ``command``, checked to be caused by it and to carry its correlation."""
        outcomes = (await self.deliver(command))[command.message_id]
        assert len(outcomes) == 1, outcomes
        event = outcomes[0]
        assert event["causation_id"] == command.message_id
        assert event["correlation_id"] == command.correlation_id
        return event
