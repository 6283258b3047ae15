"""A dead-lettered command fails its operation instead of leaving the caller waiting forever."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

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
    done = poll(lambda: (r := api.get(op_url).json())["status"] != "pending" and r, timeout=30)
    assert done["status"] == "failed"
    assert done["status_code"] == 500
    assert done["result"]["success"] is False
