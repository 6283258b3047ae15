from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devinfra import broker
from devinfra.broker import TANSU_CLIENT_ENV, create_topics, free_port, start_tansu, wait_for_kafka

from .helpers import pid_gone


async def _round_trip(bootstrap: str, topic: str) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(topic, f"msg-{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        session_timeout_ms=int(TANSU_CLIENT_ENV["KAFKA_SESSION_TIMEOUT_MS"]),
        heartbeat_interval_ms=int(TANSU_CLIENT_ENV["KAFKA_HEARTBEAT_INTERVAL_MS"]),
        fetch_max_wait_ms=int(TANSU_CLIENT_ENV["KAFKA_FETCH_MAX_WAIT_MS"]),
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(15):
            while len(got) < 3:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    got.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return got


def test_tansu_round_trip() -> None:
    with start_tansu() as broker:
        assert broker.bootstrap_servers.startswith("127.0.0.1:")
        wait_for_kafka(broker.bootstrap_servers, timeout=5)
        topic = f"devinfra-{uuid.uuid4().hex[:8]}"
        create_topics(broker.bootstrap_servers, [topic], partitions=2)
        create_topics(broker.bootstrap_servers, [topic], partitions=2)  # idempotent
        got = asyncio.run(_round_trip(broker.bootstrap_servers, topic))
        assert sorted(got) == [b"msg-0", b"msg-1", b"msg-2"]
        pid = broker.pid
    assert pid_gone(pid)


def test_fixtures_give_a_broker(kafka_bootstrap_servers: str, kafka_client_env: dict[str, str]) -> None:
    wait_for_kafka(kafka_bootstrap_servers, timeout=5)
    assert set(kafka_client_env) <= set(TANSU_CLIENT_ENV)


def test_topic_prefix_is_unique_shape(topic_prefix: str) -> None:
    assert topic_prefix.startswith("t")
    assert topic_prefix.endswith(".")


def test_free_ports_are_outside_the_kernels_ephemeral_range_and_never_repeat() -> None:
    # A port from the ephemeral range can be taken by any outgoing connection's local port before
    # the server binds it (CI: a service failed with EADDRINUSE after its migrations).
    low, high = (int(v) for v in broker._EPHEMERAL_RANGE_FILE.read_text().split())
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert not [p for p in ports if low <= p <= high]


def test_a_port_someone_listens_on_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as listener, socket.socket() as probe:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        probe.bind(("127.0.0.1", 0))
        taken, spare = listener.getsockname()[1], probe.getsockname()[1]
    # Re-listen on the first only: candidates are exactly {taken, spare}.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", taken))
        listener.listen()
        low, high = min(taken, spare), max(taken, spare)
        monkeypatch.setattr(broker, "_LISTEN_RANGE", (low, high + 1))
        monkeypatch.setattr(broker, "_ephemeral_range", lambda: (low + 1, high - 1))
        monkeypatch.setattr(broker, "_handed_out", set())
        assert free_port() == spare
