"""What the bus runtime costs per message, in CPU-seconds of its own process (not wall time).

One process, an embedded broker and a fresh database; two phases, each timed with
`time.process_time()` (user + system CPU of this process only, so other load on a shared
machine changes the wall time but hardly these figures):

1. relay: N messages queued by `Bus.publish_later` in one transaction; CPU from its commit until
   the outbox is empty (fetch, lease, publish with acks=all, delete), per row.
2. consume: a consumer group reads those N records; each goes through FastStream (parser,
   middleware, telemetry), the bus's decode and dispatch, and a handler that opens a transaction,
   claims the message id in the inbox and commits; then the offset commit. Per message.
   With `--batch` the consumer is a batch subscription (`Bus.subscribe(batch=True)`): the same
   handler, its transaction scope joining one transaction per fetched batch, one offset commit each.

PostgreSQL's and the broker's own CPU are not in these figures (see `campaigns.py` for the whole
machine). `--profile` runs each phase under cProfile and prints its top functions (slower).

    uv run python bench/bus_cost.py [--messages 2000] [--batch] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import time
import uuid
from typing import Literal

import structlog
from _harness import SERVER
from sqlalchemy import MetaData, func, select, text

from bus.db import make_engine, make_sessionmaker
from bus.runtime import Bus
from bus.settings import BusSettings
from bus.tables import make_bus_tables
from bus.uow import TransactionScope
from contracts.base import Command
from devinfra.broker import TANSU_CLIENT_ENV, create_topics_async, start_tansu
from devinfra.postgres import create_database, drop_database


class Ping(Command):
    type: Literal["bench.ping"] = "bench.ping"
    n: int = 0


async def _until(check: object, every_s: float, deadline_s: float = 300.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("bench phase did not finish")
        await asyncio.sleep(every_s)  # polling with a deadline


async def run(bootstrap: str, url: str, messages: int, profile: bool, batch: bool) -> None:
    settings = BusSettings.model_validate(
        {
            **TANSU_CLIENT_ENV,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:6]}.",
            "KAFKA_FETCH_MAX_WAIT_MS": 10,
            "OTEL_TRACES_EXPORTER": "none",
        }
    )
    engine = make_engine(url, pool_size=4)
    outbox, inbox_table = make_bus_tables(MetaData(schema="bench"))
    async with engine.begin() as connection:
        await connection.execute(text('CREATE SCHEMA "bench"'))
        await connection.run_sync(outbox.metadata.create_all)
    topic = "bench.commands"
    await create_topics_async(bootstrap, [settings.topic(topic), settings.topic(topic) + ".dlq"], 4)
    sessions = make_sessionmaker(engine)

    producer = Bus(settings, service="bench-producer", engine=engine, outbox_table=outbox)
    await producer.start()
    queued_cpu = time.process_time()
    async with sessions() as session, session.begin():
        for n in range(messages):
            await producer.publish_later(session, topic, Ping(n=n), key=str(n % 50))
    queued_cpu = time.process_time() - queued_cpu

    async def outbox_empty() -> bool:
        async with engine.connect() as connection:
            return (await connection.scalar(select(func.count()).select_from(outbox))) == 0

    profiler = cProfile.Profile(time.process_time) if profile else None
    relay_cpu = time.process_time()
    if profiler:
        profiler.enable()
    # Rarely: the count is a query in this process, and would be measured as the relay's CPU.
    await _until(outbox_empty, 0.25)
    if profiler:
        profiler.disable()
        _print_profile("relay", profiler)
    relay_cpu = time.process_time() - relay_cpu
    await producer.stop()

    handled = 0
    consumer = Bus(
        settings, service="bench-consumer", engine=engine, outbox_table=outbox, inbox_table=inbox_table
    )

    class Scope(TransactionScope):
        consumer = "bench"

    Scope.inbox_table = inbox_table

    async def handler(message: Ping) -> None:
        nonlocal handled
        async with Scope(sessions, consumer) as uow:
            await uow.claim(message.message_id)
        handled += 1

    consumer.subscribe(topic, Ping, handler, batch=batch)
    profiler = cProfile.Profile(time.process_time) if profile else None
    consume_cpu = time.process_time()
    if profiler:
        profiler.enable()
    await consumer.start()

    async def all_handled() -> bool:
        return handled >= messages

    await _until(all_handled, 0.02)
    if profiler:
        profiler.disable()
        _print_profile("consume", profiler)
    consume_cpu = time.process_time() - consume_cpu
    await consumer.stop()
    await engine.dispose()

    print(f"messages {messages}{' (under cProfile: inflated)' if profile else ''}{' batch' if batch else ''}")
    print(f"queue (publish_later, one transaction)  {queued_cpu / messages * 1000:7.3f} ms CPU per message")
    print(f"relay (outbox -> Kafka, delete)         {relay_cpu / messages * 1000:7.3f} ms CPU per row")
    print(f"consume (inbox claim, commit, offset)   {consume_cpu / messages * 1000:7.3f} ms CPU per message")


def _print_profile(phase: str, profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(45)
    stats.print_callers("run_sync_in_worker_thread")
    print(f"---- {phase}: top functions by own time ----")
    print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--batch", action="store_true", help="consume with Bus.subscribe(batch=True)")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    db = f"sb_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(SERVER, db)
    try:
        with start_tansu() as broker:
            asyncio.run(run(broker.bootstrap_servers, url, args.messages, args.profile, args.batch))
    finally:
        drop_database(SERVER, db)


if __name__ == "__main__":
    main()
