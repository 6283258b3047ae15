"""Fetch pacing (bus.pacing): an idle consumer waits longer at the broker; a record brings the
short wait back. The fetcher attribute it sets is pinned against the installed aiokafka on the
real broker, and a paced consumer still gets every record, in order."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bus.pacing import FetchPacing
from devinfra.broker import create_topics_async


class FakeFetcher:
    def __init__(self, wait_ms: int) -> None:
        self._fetch_max_wait_ms = wait_ms


class FakeConsumer:
    """`getmany` answers the batches given, then nothing; records what it was asked."""

    def __init__(self, batches: list[dict[str, list[str]]], fetcher: Any = None) -> None:
        self.batches = batches
        self._fetcher = fetcher
        self.asked: list[tuple[int, int]] = []

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, list[str]]:
        self.asked.append((timeout_ms, max_records))
        return self.batches.pop(0) if self.batches else {}


async def test_a_quiet_consumer_waits_longer_and_a_record_brings_the_short_wait_back() -> None:
    fetcher = FakeFetcher(10)
    consumer = FakeConsumer([{}, {"p0": ["a", "b"], "p1": ["c"]}, {}], fetcher)
    pacing = FetchPacing(busy_wait_ms=10, idle_wait_ms=100, idle_after_ms=1000)

    assert await pacing.fetch(consumer, max_records=5) == []
    assert (fetcher._fetch_max_wait_ms, pacing.idle) == (100, True)
    assert await pacing.fetch(consumer, max_records=5) == ["a", "b", "c"]
    assert (fetcher._fetch_max_wait_ms, pacing.idle) == (10, False)
    assert await pacing.fetch(consumer, max_records=5) == []
    assert fetcher._fetch_max_wait_ms == 100
    # Each fetch waits for records up to the idle threshold, no longer.
    assert consumer.asked == [(1000, 5)] * 3


async def test_without_an_idle_wait_the_wait_is_never_changed() -> None:
    fetcher = FakeFetcher(10)
    pacing = FetchPacing(busy_wait_ms=10, idle_wait_ms=None, idle_after_ms=1000)
    assert await pacing.fetch(FakeConsumer([], fetcher), max_records=1) == []
    assert fetcher._fetch_max_wait_ms == 10


async def test_a_consumer_without_the_fetcher_attribute_is_read_unpaced() -> None:
    pacing = FetchPacing(busy_wait_ms=10, idle_wait_ms=100, idle_after_ms=1000)
    consumer = FakeConsumer([{}, {"p0": ["a"]}], fetcher=object())
    assert await pacing.fetch(consumer, max_records=1) == []
    assert await pacing.fetch(consumer, max_records=1) == ["a"]
    assert pacing.idle is False


@pytest.mark.integration
async def test_a_paced_consumer_on_the_real_broker_changes_its_fetch_wait_and_misses_nothing(
    kafka_bootstrap_servers: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}pacing_{uuid.uuid4().hex[:8]}"
    await create_topics_async(kafka_bootstrap_servers, [topic], 1)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    try:
        # The attribute pacing sets is the one the installed aiokafka builds its fetches from.
        assert consumer._fetcher._fetch_max_wait_ms == 10
        pacing = FetchPacing(busy_wait_ms=10, idle_wait_ms=100, idle_after_ms=300)
        assert await pacing.fetch(consumer, max_records=10) == []
        assert consumer._fetcher._fetch_max_wait_ms == 100
        for n in range(5):
            await producer.send_and_wait(topic, str(n).encode())
        values: list[bytes] = []
        while len(values) < 5:
            values += [record.value for record in await pacing.fetch(consumer, max_records=2)]
        assert values == [b"0", b"1", b"2", b"3", b"4"]
        assert consumer._fetcher._fetch_max_wait_ms == 10
    finally:
        await producer.stop()
        await consumer.stop()
