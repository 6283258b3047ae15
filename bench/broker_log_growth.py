"""Does the embedded broker's cost per record grow with a partition's length?

A campaign's CPU per call grows with its size (bench/README, "Campaign throughput"). This measures
the broker alone: one topic of one partition, a consumer at its tail (fetch wait 10 ms, as the
stack's busy consumers use); after the log holds 0, 20,000, 60,000 and 120,000 records of ~300 B,
the broker's CPU per second with nothing produced, and per record for 100 records produced one
at a time and consumed. The broker's CPU comes from /proc; nothing of Switchboard runs.

    uv run python bench/broker_log_growth.py
"""

from __future__ import annotations

import asyncio
import time

from _harness import cpu_seconds
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devinfra.broker import EmbeddedBroker, start_tansu

SIZES = (0, 20_000, 60_000, 120_000)


async def measure(broker: EmbeddedBroker) -> None:
    servers = broker.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    await admin.create_topics([NewTopic("growth", 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5)
    consumer = AIOKafkaConsumer(
        "growth",
        bootstrap_servers=servers,
        group_id="growth",
        fetch_max_wait_ms=10,
        auto_offset_reset="latest",
    )
    await producer.start()
    await consumer.start()
    try:
        produced = 0
        print("Embedded broker (Tansu, in-memory storage): cost per record against the partition's length")
        for size in SIZES:
            while produced < size:
                upto = min(size, produced + 2_000)
                await asyncio.gather(*[producer.send("growth", b"x" * 300) for _ in range(produced, upto)])
                produced = upto
            while await consumer.getmany(timeout_ms=200):
                pass  # to the tail
            idle_from, started = cpu_seconds(broker.pid), time.perf_counter()
            while time.perf_counter() < started + 5:
                await consumer.getmany(timeout_ms=50)
            idle = (cpu_seconds(broker.pid) - idle_from) / (time.perf_counter() - started)
            trickle_from = cpu_seconds(broker.pid)
            for _ in range(100):
                await producer.send_and_wait("growth", b"y" * 300)
                await consumer.getmany(timeout_ms=20)
            per_record = (cpu_seconds(broker.pid) - trickle_from) / 100
            produced += 100
            print(
                f"  {size:>7,} records in the log: idle consumer at the tail {idle * 1000:5.1f} ms of broker CPU a second;"
                f" a record produced and consumed {per_record * 1000:5.2f} ms"
            )
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    with start_tansu() as broker:
        asyncio.run(measure(broker))


if __name__ == "__main__":
    main()
