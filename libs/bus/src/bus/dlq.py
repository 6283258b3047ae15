"""Dead letters for an operator: list them, inspect one, replay some through the normal path.

    uv run python -m bus.dlq list                                # every dead-letter topic and its count
    uv run python -m bus.dlq list switchboard.campaigns.commands.dlq   # its messages, one line each
    uv run python -m bus.dlq show switchboard.campaigns.commands.dlq 0:17   # headers and body
    uv run python -m bus.dlq replay switchboard.campaigns.commands.dlq 0:17 [2:5 ...] | --all

It reads KAFKA_BOOTSTRAP_SERVERS and KAFKA_TOPIC_PREFIX like the services (topic names may be given
with or without the prefix). A replay publishes the original bytes, key and headers (without the
`x-*` error headers the dead-lettering added) to the topic in `x-original-topic`, so the message
goes through the consumer's inbox like any other: one that was handled already has no second
effect. Kafka topics are append-only: a replayed dead letter stays listed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bus.kafka_security import kafka_client_kwargs
from bus.settings import BusSettings
from contracts.topics import DEAD_LETTER_SUFFIX


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def summary(self) -> dict[str, str | None]:
        return {
            "position": self.position,
            "reason": self.headers.get("x-reason"),
            "type": self.headers.get("type"),
            "message_id": self.headers.get("message_id"),
            "correlation_id": self.headers.get("correlation_id"),
            "failed_by": self.headers.get("x-failed-by"),
            "error": (self.headers.get("x-error") or "")[:200],
        }


class DeadLetters:
    """Reads and replays the dead-letter topics of one cluster (and topic prefix)."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings

    def full_name(self, topic: str) -> str:
        prefix = self.settings.kafka_topic_prefix
        return topic if topic.startswith(prefix) else self.settings.topic(topic)

    async def topics(self) -> dict[str, int]:
        """Every dead-letter topic under the prefix → how many records it holds."""
        admin = AIOKafkaAdminClient(**kafka_client_kwargs(self.settings))
        await admin.start()
        try:
            names = sorted(
                t
                for t in await admin.list_topics()
                if t.endswith(DEAD_LETTER_SUFFIX) and t.startswith(self.settings.kafka_topic_prefix)
            )
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(**kafka_client_kwargs(self.settings), group_id=None)
        await consumer.start()
        try:
            counts = {}
            for name in names:
                partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
                if not partitions:
                    await consumer._client.force_metadata_update()
                    partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
                begin = await consumer.beginning_offsets(partitions)
                end = await consumer.end_offsets(partitions)
                counts[name] = sum(end[tp] - begin[tp] for tp in partitions)
            return counts
        finally:
            await consumer.stop()

    async def read(self, topic: str) -> list[DeadLetter]:
        """Every record of `topic` (a dead-letter topic), in partition and offset order."""
        name = self.full_name(topic)
        consumer = AIOKafkaConsumer(
            **kafka_client_kwargs(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
            if not partitions:
                raise LookupError(f"No such topic: {name}")
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            out: list[DeadLetter] = []
            while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                batches = await consumer.getmany(*partitions, timeout_ms=1000)
                for tp, records in batches.items():
                    out.extend(
                        DeadLetter(
                            name,
                            tp.partition,
                            r.offset,
                            r.key,
                            r.value or b"",
                            {k: (v or b"").decode("utf-8", errors="replace") for k, v in r.headers},
                        )
                        for r in records
                        if r.offset < end[tp]
                    )
            return sorted(out, key=lambda d: (d.partition, d.offset))
        finally:
            await consumer.stop()

    async def replay(self, letters: Sequence[DeadLetter]) -> list[str]:
        """Publish each dead letter again to its original topic; the positions replayed."""
        producer = AIOKafkaProducer(**kafka_client_kwargs(self.settings), acks="all")
        await producer.start()
        try:
            done = []
            for letter in letters:
                target = letter.headers.get("x-original-topic") or letter.topic.removesuffix(
                    DEAD_LETTER_SUFFIX
                )
                headers = [(k, v.encode()) for k, v in letter.headers.items() if not k.startswith("x-")]
                await producer.send_and_wait(target, letter.value, key=letter.key, headers=headers)
                done.append(letter.position)
            return done
        finally:
            await producer.stop()


def _select(letters: list[DeadLetter], positions: Sequence[str]) -> list[DeadLetter]:
    by_position = {d.position: d for d in letters}
    missing = [p for p in positions if p not in by_position]
    if missing:
        raise LookupError(f"No dead letter at {', '.join(missing)} (positions are partition:offset)")
    return [by_position[p] for p in positions]


async def main(argv: Sequence[str] | None = None, settings: BusSettings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bus.dlq", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="dead-letter topics with counts, or one topic's messages")
    listing.add_argument("topic", nargs="?")
    show = commands.add_parser("show", help="one dead letter's headers and body")
    show.add_argument("topic")
    show.add_argument("position", help="partition:offset")
    replay = commands.add_parser("replay", help="publish dead letters again to their original topic")
    replay.add_argument("topic")
    replay.add_argument("positions", nargs="*", help="partition:offset ...")
    replay.add_argument("--all", action="store_true", help="every dead letter of the topic")
    args = parser.parse_args(argv)
    dlq = DeadLetters(settings or BusSettings())
    try:
        if args.command == "list" and args.topic is None:
            for name, count in (await dlq.topics()).items():
                print(f"{count:>8}  {name}")
        elif args.command == "list":
            for letter in await dlq.read(args.topic):
                print(json.dumps(letter.summary()))
        elif args.command == "show":
            (letter,) = _select(await dlq.read(args.topic), [args.position])
            body = letter.value.decode("utf-8", errors="replace")
            print(
                json.dumps({"position": letter.position, "headers": letter.headers, "body": body}, indent=2)
            )
        else:
            letters = await dlq.read(args.topic)
            chosen = letters if args.all else _select(letters, args.positions)
            if not chosen:
                print("nothing to replay (give partition:offset positions or --all)", file=sys.stderr)
                return 2
            for position in await dlq.replay(chosen):
                print(f"replayed {position}")
    except LookupError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
