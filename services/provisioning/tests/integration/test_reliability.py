"""Redelivery, upstream error mapping, rate-limit retries and crash recovery."""

from __future__ import annotations

import uuid

import pytest

from contracts.provisioning import (
    CreateAgent,
    CreateEcommerceTools,
    CreateKnowledgeDocument,
    CreateWebhookTool,
)
from provisioning import domain
from provisioning.bootstrap import Container

from .conftest import Harness, pretend_crashed

pytestmark = pytest.mark.integration


def _tool(name: str = "lookup") -> CreateWebhookTool:
    return CreateWebhookTool(
        name=name, description="Look things up.", webhook_url="https://api.example/lookup", correlation_id="c"
    )


async def test_redelivered_command_creates_one_resource_and_one_outcome(harness: Harness) -> None:
    command = CreateAgent(name=f"dup-{uuid.uuid4().hex[:6]}", first_message="Hi")
    outcomes = await harness.deliver(command, command)
    assert len(outcomes[command.message_id]) == 1
    assert len(await harness.requests("POST", "/v1/convai/agents/create")) == 1


@pytest.mark.parametrize(
    ("status", "expected_status", "expected_error"),
    [
        (422, 422, "Validation error"),
        (401, 401, "Authentication failed"),
        (403, 401, "Authentication failed"),
        (404, 404, "Not found"),
    ],
)
async def test_upstream_errors_map_to_command_failed(
    harness: Harness, status: int, expected_status: int, expected_error: str
) -> None:
    body = (
        {"detail": [{"loc": ["body", "x"], "msg": "bad", "type": "value_error"}]} if status == 422 else None
    )
    await harness.fault(method="POST", path_regex="^/v1/convai/tools$", status=status, count=1, body=body)
    event = await harness.one(_tool())
    assert event["type"] == "command.failed"
    assert event["command_type"] == "tool.create_webhook"
    assert (event["status_code"], event["error"]) == (expected_status, expected_error)
    if status == 422:
        assert '"loc"' in event["detail"]


async def test_rate_limit_with_retry_after_is_retried(harness: Harness) -> None:
    await harness.fault(
        method="POST", path_regex="^/v1/convai/agents/create$", status=429, count=1, retry_after=0.2
    )
    event = await harness.one(CreateAgent(name="rate-limited", correlation_id="c"))
    assert event["type"] == "agent.created"
    attempts = await harness.requests("POST", "/v1/convai/agents/create")
    assert [r["status"] for r in attempts] == [429, 200]
    assert attempts[1]["timestamp"] - attempts[0]["timestamp"] >= 0.2


async def test_rate_limit_that_persists_fails_with_429(harness: Harness) -> None:
    await harness.fault(
        method="POST", path_regex="^/v1/convai/tools$", status=429, count=10, retry_after=0.05
    )
    event = await harness.one(_tool())
    assert (event["status_code"], event["error"], event["detail"]) == (
        429,
        "Rate limit exceeded",
        # ElevenLabs' reason is kept in the detail (the simulator's 429 says the system is busy).
        "system_busy: The system is experiencing heavy traffic, please try again later. Retry after 1 seconds",
    )
    assert len(await harness.requests("POST", "/v1/convai/tools")) == 4  # 1 + 3 retries


async def test_server_errors_that_persist_fail_with_502(harness: Harness) -> None:
    await harness.fault(method="POST", path_regex="^/v1/convai/tools$", status=503, count=10)
    event = await harness.one(_tool())
    assert (event["status_code"], event["error"]) == (502, "ElevenLabs unavailable")


async def test_recovery_adopts_agent_created_before_a_crash(harness: Harness, container: Container) -> None:
    command = CreateAgent(name=f"recover-{uuid.uuid4().hex[:6]}", first_message="Hi")
    await pretend_crashed(container, command)
    # the earlier delivery got as far as creating the agent upstream
    agent_id = await container.elevenlabs.create_agent(domain.agent_create_body(command, []))
    await harness.sim.delete("/_sim/requests")

    event = await harness.one(command)
    assert event["type"] == "agent.created"
    assert event["agent"]["agent_id"] == agent_id
    assert await harness.requests("POST", "/v1/convai/agents/create") == []


async def test_recovery_creates_when_nothing_was_created(harness: Harness, container: Container) -> None:
    command = CreateAgent(name=f"recover-none-{uuid.uuid4().hex[:6]}")
    await pretend_crashed(container, command)
    event = await harness.one(command)
    assert event["type"] == "agent.created"
    assert len(await harness.requests("POST", "/v1/convai/agents/create")) == 1


async def test_recovery_adopts_ecommerce_tools_and_secrets(harness: Harness, container: Container) -> None:
    command = CreateEcommerceTools(webhook_base_url="https://sb/api/v1")
    await pretend_crashed(container, command)
    # the earlier delivery created the products secret and tool, then crashed
    name = domain.secret_name("products", command.message_id)
    secret = await container.elevenlabs.create_secret(name, "token")
    config = domain.ecommerce_tool_config(
        command.webhook_base_url, domain.PRODUCTS_TOOL, secret["secret_id"], "X-Switchboard-Tool-Token"
    )
    products = await container.elevenlabs.create_tool(config)
    await harness.sim.delete("/_sim/requests")

    event = await harness.one(command)
    assert event["products_tool"]["tool_id"] == products["id"]
    created = await harness.requests("POST", "/v1/convai/tools")
    assert [r["json"]["tool_config"]["name"] for r in created] == ["get_orders"]
    assert len(await harness.requests("POST", "/v1/convai/secrets")) == 1


async def test_recovery_adopts_knowledge_document(harness: Harness, container: Container) -> None:
    command = CreateKnowledgeDocument(source_type="text", name=f"doc-{uuid.uuid4().hex[:6]}", text="hello")
    await pretend_crashed(container, command)
    created = await container.elevenlabs.create_kb_text("hello", command.name, None)
    await harness.sim.delete("/_sim/requests")

    event = await harness.one(command)
    assert event["document"]["document_id"] == created["id"]
    assert await harness.requests("POST", "/v1/convai/knowledge-base/text") == []
