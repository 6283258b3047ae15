"""A dead-lettered command fails its operation instead of leaving the caller waiting forever."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts import topics
from contracts.provisioning import CreateAgent
from devinfra.stack import Stack
from tests.e2e.conftest import poll


def test_dead_lettered_command_fails_its_operation(api: httpx.Client, stack: Stack) -> None:
    env = stack.env
    command = CreateAgent(name="poison", message_id=uuid.uuid4().hex)

    async def arrange() -> None:
        conn = await asyncpg.connect(env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(
                "INSERT INTO gateway.operations (operation_id, command_type, status) VALUES ($1, $2, 'pending')",
                command.message_id,
                command.type,
            )
        finally:
            await conn.close()
        producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
        await producer.start()
        try:
            dlq = env["KAFKA_TOPIC_PREFIX"] + topics.dead_letter(topics.PROVISIONING_COMMANDS)
            await producer.send_and_wait(
                dlq, command.model_dump_json().encode(), headers=[("x-error", b"RuntimeError('boom')")]
            )
        finally:
            await producer.stop()

    asyncio.run(arrange())
    op_url = f"/api/v1/operations/{command.message_id}"
    done = poll(lambda: (r := api.get(op_url).json())["status"] != "pending" and r)
    assert done["status"] == "failed"
    assert done["status_code"] == 500
    assert done["result"]["success"] is False


def test_a_poison_message_on_a_public_commands_topic_never_wedges_its_partition(
    api: httpx.Client, stack: Stack
) -> None:
    """The issue's example: `{"type": ["x"]}` produced raw onto the campaigns commands topic looped
    for ever and everything behind it on that partition waited. Now it is dead-lettered with its
    reason and a write queued behind it on every partition completes."""
    env = stack.env
    topic = env["KAFKA_TOPIC_PREFIX"] + topics.CAMPAIGN_COMMANDS
    marker = uuid.uuid4().hex

    async def poison_every_partition() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
        await producer.start()
        try:
            partitions = sorted(await producer.partitions_for(topic))
            for partition in partitions:
                await producer.send_and_wait(
                    topic, b'{"type": ["x"]}', partition=partition, headers=[("marker", marker.encode())]
                )
            return len(partitions)
        finally:
            await producer.stop()

    count = asyncio.run(poison_every_partition())
    # Do-not-call writes go to the campaigns commands topic, keyed by number: spread over partitions.
    numbers = [f"+1415555{1000 + i:04d}" for i in range(3 * count)]
    for number in numbers:
        added = api.post("/api/v1/do-not-call", json={"phone_number": number, "reason": "poison test"})
        if added.status_code == 202:
            op_url = added.json()["status_url"]
            added = poll(
                lambda url=op_url: (r := api.get(url).json())["status"] != "pending" and r, timeout=60
            )
            assert added["status"] == "succeeded", added
        else:
            assert added.status_code in (200, 201), added.text

    async def dead_letters() -> list[dict[str, str]]:
        consumer = AIOKafkaConsumer(
            topics.dead_letter(topic),
            bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            auto_offset_reset="earliest",
            group_id=None,
        )
        await consumer.start()
        found: list[dict[str, str]] = []
        try:
            for batch in (await consumer.getmany(timeout_ms=2000)).values():
                for record in batch:
                    headers = {k: (v or b"").decode() for k, v in record.headers}
                    if headers.get("marker") == marker:
                        found.append(headers)
        finally:
            await consumer.stop()
        return found

    letters = poll(
        lambda: (found := asyncio.run(dead_letters())) and len(found) == count and found, timeout=60
    )
    assert {h["x-reason"] for h in letters} == {"type-invalid"}
    assert {h["x-failed-by"] for h in letters} == {"campaigns"}
