"""A write whose command cannot travel on the bus is refused up front, never left pending (issue 10 §3)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from contracts.provisioning import CreateAgent
from gateway import handlers
from gateway.agents import AGENT_READBACK_BYTES
from gateway.app import create_app
from gateway.bootstrap import Container, bootstrap
from gateway.models import Agent, Operation, PhoneNumber, outbox
from gateway.settings import Settings

from .conftest import API_KEY

pytestmark = pytest.mark.integration

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
DEADLINE_S = 30.0


async def _count(container: Container, what: Any) -> int:
    async with container.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(what)) or 0)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # The example: a 1.1 MB system prompt answered 202 and never finished.
        ("POST", "/api/v1/agents", {"name": "big", "system_prompt": "x" * 1_100_000}),
        ("POST", "/api/v1/agents", {"name": "big", "first_message": "é" * 600_000}),  # 1.2 MB of UTF-8
        ("PATCH", "/api/v1/agents/agent_big/prompt", {"system_prompt": "x" * 2_000_000}),
        ("POST", "/api/v1/knowledge-base/text", {"text": "x" * 1_500_000, "name": "big"}),
        (
            "POST",
            "/api/v1/phone-numbers/twilio/outbound-call",
            {
                "agent_id": "agent_big",
                "agent_phone_number_id": "pn_big",
                "to_number": "+14155550123",
                "dynamic_variables": {f"v{i}": "d" * 10_000 for i in range(120)},
            },
        ),
    ],
)
async def test_a_write_too_large_for_the_bus_is_refused_with_413(
    container: Container, method: str, path: str, body: dict[str, Any]
) -> None:
    app = create_app(container)  # lifespan not run: only the request path is exercised
    await _agent_and_number(container)  # what the PATCH and the call refer to
    operations, rows = await _count(container, Operation), await _count(container, outbox)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as api:
        response = await api.request(method, path, json=body, headers=HEADERS)
    assert response.status_code == 413, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"] == "Payload too large"
    limit = container.settings.bus_max_message_bytes
    assert f"at most {limit} bytes" in answer["detail"] and "BUS_MAX_MESSAGE_BYTES" in answer["detail"]
    # Nothing was queued: no operation left pending, no outbox row for the relay to choke on.
    assert await _count(container, Operation) == operations
    assert await _count(container, outbox) == rows


async def test_a_write_just_under_the_limit_is_accepted(container: Container) -> None:
    app = create_app(container)
    # An agent's command leaves room for the agent as ElevenLabs reads it back (its event).
    prompt = "x" * (container.settings.bus_max_message_bytes - AGENT_READBACK_BYTES - 4000)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as api:
        response = await api.post(
            "/api/v1/agents", json={"name": "near", "system_prompt": prompt}, headers=HEADERS
        )
    assert response.status_code == 202, response.text


async def test_a_command_the_relay_can_never_publish_fails_its_operation(
    settings: Settings, kafka_bootstrap_servers: str, kafka_client_env: dict[str, str]
) -> None:
    """Before: the relay retried the row for ever and the operation stayed pending for ever."""
    live = bootstrap(
        Settings.model_validate(
            {
                **settings.model_dump(by_alias=True),
                **kafka_client_env,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
                "KAFKA_ENABLE_IDEMPOTENCE": False,
            }
        )
    )
    command = CreateAgent(name="huge", system_prompt="x" * 1_200_000, message_id=uuid.uuid4().hex)
    async with live.engine.begin() as connection:
        await connection.execute(
            insert(Operation).values(
                operation_id=command.message_id, command_type=command.type, status="pending"
            )
        )
    async with live.uow() as uow:
        # Written past the size check, as by a release that had none: the relay meets the limit.
        await live.bus.outbox.publish(
            command.model_dump_json().encode(),
            queue="kafka-relay",
            session=uow.session,
            headers={
                "x-topic": live.settings.topic("switchboard.provisioning.commands"),
                "message_id": command.message_id,
                "type": command.type,
            },
        )
    await live.bus.start(topics=handlers.topics_used())
    try:
        deadline = time.monotonic() + DEADLINE_S
        while (op := await live.service.operation(command.message_id))["status"] == "pending":
            assert time.monotonic() < deadline, "the operation stayed pending"
            await asyncio.sleep(0.05)  # polling with a deadline
    finally:
        await live.bus.stop()
        await live.http.aclose()
        await live.engine.dispose()
    assert op["status"] == "failed" and op["status_code"] == 413
    assert op["result"]["success"] is False and op["result"]["error"] == "Payload too large"
    assert "agent.create" in op["result"]["detail"] and "size limit" in op["result"]["detail"]


async def _agent_and_number(container: Container) -> None:
    now = datetime.now(UTC)
    async with container.engine.begin() as connection:
        await connection.execute(
            insert(Agent)
            .values(
                agent_id="agent_big",
                name="big",
                conversation_config={},
                platform_settings={},
                tags=[],
                created_at_unix=0,
                last_event_at=now,
            )
            .on_conflict_do_nothing()
        )
        await connection.execute(
            insert(PhoneNumber)
            .values(
                phone_number_id="pn_big",
                phone_number="+14155550100",
                label="big",
                provider="twilio",
                created_at_unix=0,
                last_event_at=now,
            )
            .on_conflict_do_nothing()
        )


def _submission(recipients: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "call_name": "big",
        "agent_id": "agent_big",
        "phone_number_id": "pn_big",
        "recipients": recipients,
    }


async def test_recipients_with_long_variables_are_chunked_by_bytes_not_refused(container: Container) -> None:
    """1000 recipients of 3 KB each (3 MB) travel as several messages that each fit the bus."""
    await _agent_and_number(container)
    app = create_app(container)
    recipients = [
        {"phone_number": f"+1415555{i:04d}", "dynamic_variables": {"notes": f"{i:04d}" + "n" * 3000}}
        for i in range(1000)
    ]
    before = await _count(container, outbox)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as api:
        response = await api.post(
            "/api/v1/batch-calling/submit", json=_submission(recipients), headers=HEADERS
        )
    assert response.status_code == 202, response.text[:500]
    async with container.engine.connect() as connection:
        rows = (await connection.execute(select(outbox.c.payload).order_by(outbox.c.id).offset(before))).all()
    messages = [json.loads(row.payload) for row in rows]
    limit = container.settings.bus_max_message_bytes
    assert len(messages) >= 4  # 3 MB cannot travel in fewer than four 1 MB messages
    assert all(len(row.payload) < limit for row in rows)
    assert messages[0]["type"] == "campaign.submit" and messages[0]["recipient_chunks"] == len(messages)
    assert [m.get("chunk_index") for m in messages[1:]] == list(range(1, len(messages)))
    carried = [r["dynamic_variables"]["notes"][:4] for m in messages for r in m["recipients"]]
    assert carried == [f"{i:04d}" for i in range(1000)]  # every recipient once, in order


async def test_one_recipient_too_large_for_any_message_is_refused_with_413(container: Container) -> None:
    await _agent_and_number(container)
    app = create_app(container)
    recipients = [
        {"phone_number": "+14155550001"},
        {"phone_number": "+14155550002", "dynamic_variables": {"notes": "n" * 1_100_000}},
    ]
    operations = await _count(container, Operation)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as api:
        response = await api.post(
            "/api/v1/batch-calling/submit", json=_submission(recipients), headers=HEADERS
        )
    assert response.status_code == 413, response.text[:500]
    assert "BUS_MAX_MESSAGE_BYTES" in response.json()["detail"]
    assert await _count(container, Operation) == operations
