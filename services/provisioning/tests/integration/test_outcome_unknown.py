"""A create whose answer is lost (created, then 500 / time out) leaves exactly one resource upstream
and the command succeeds with it (issue 10 §1): recovery by lookup, never a blind second POST."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contracts.provisioning import (
    CreateAgent,
    CreateEcommerceTools,
    CreateEmailTemplate,
    CreateKnowledgeDocument,
    CreateWebhookTool,
)
from provisioning import domain
from provisioning.bootstrap import Container

from .conftest import Harness, signed_upload_url

pytestmark = pytest.mark.integration

_CLIENT_TIMEOUT_S = 2.0
# "created, then 500" and "created, then the answer comes after the client gave up"
LOST_ANSWERS = {"500": {"status": 500}, "timeout": {"delay_ms": 5000}}


@pytest.fixture(params=list(LOST_ANSWERS))
def lost_answer(request: pytest.FixtureRequest, container: Container) -> Iterator[dict[str, Any]]:
    fault: dict[str, Any] = LOST_ANSWERS[request.param]
    if "delay_ms" in fault:  # a short client timeout, so the test does not wait the default 10 s
        original, container.elevenlabs.timeout_s = container.elevenlabs.timeout_s, _CLIENT_TIMEOUT_S
        yield fault
        container.elevenlabs.timeout_s = original
    else:
        yield fault


async def _lose_answer(harness: Harness, path: str, fault: dict[str, Any]) -> None:
    await harness.fault(method="POST", path_regex=f"^{path}$", after=True, **fault)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_agent(harness: Harness, container: Container, lost_answer: dict[str, Any]) -> None:
    command = CreateAgent(name=_name("lost-agent"), first_message="Hi")
    await _lose_answer(harness, "/v1/convai/agents/create", lost_answer)

    event = await harness.one(command)

    assert event["type"] == "agent.created", event
    tag = domain.command_tag(command.message_id)
    upstream = [
        a for a in await container.elevenlabs.list_agents(search=command.name) if domain.has_tag(a, tag)
    ]
    assert [a["agent_id"] for a in upstream] == [event["agent"]["agent_id"]]
    assert len(await harness.requests("POST", "/v1/convai/agents/create")) == 1


async def test_webhook_tool(harness: Harness, container: Container, lost_answer: dict[str, Any]) -> None:
    command = CreateWebhookTool(
        name=_name("lost_tool").replace("-", "_"),
        description="Look things up.",
        webhook_url="https://api.example/lookup",
    )
    await _lose_answer(harness, "/v1/convai/tools", lost_answer)

    event = await harness.one(command)

    assert event["type"] == "tool.created", event
    upstream = await container.elevenlabs.list_tools(search=command.name)
    assert [t["id"] for t in upstream] == [event["tool"]["tool_id"]]
    assert len(await harness.requests("POST", "/v1/convai/tools")) == 1


@pytest.mark.parametrize("path", ["/v1/convai/secrets", "/v1/convai/tools"])
async def test_secret_and_secured_tool(
    harness: Harness, container: Container, lost_answer: dict[str, Any], path: str
) -> None:
    command = CreateEcommerceTools(webhook_base_url="https://sb.example/api/v1")
    await _lose_answer(harness, path, lost_answer)

    event = await harness.one(command)

    assert event["type"] == "ecommerce_tools.created", event
    names = [domain.secret_name(p, command.message_id) for p in ("products", "orders")]
    secrets = [s for s in await container.elevenlabs.list_secrets() if s["name"] in names]
    assert sorted(s["name"] for s in secrets) == sorted(names)  # one of each
    secret_ids = {str(s["secret_id"]) for s in secrets}
    ours = [
        t
        for t in await container.elevenlabs.list_tools()
        if domain.tool_secret_id(t, "X-Switchboard-Tool-Token") in secret_ids
    ]
    assert sorted(t["id"] for t in ours) == sorted(
        [event["products_tool"]["tool_id"], event["orders_tool"]["tool_id"]]
    )
    assert len(await harness.requests("POST", "/v1/convai/secrets")) == 2
    assert len(await harness.requests("POST", "/v1/convai/tools")) == 2


@pytest.mark.parametrize("source_type", ["text", "url", "file"])
async def test_knowledge_document(
    harness: Harness,
    container: Container,
    lost_answer: dict[str, Any],
    source_type: str,
    file_server: tuple[str, dict[str, bytes]],
) -> None:
    name = _name("lost-doc")
    base, files = file_server
    files[f"/internal/uploads/{name}"] = b"Opening hours: 9-5."
    command = CreateKnowledgeDocument(
        source_type=source_type,
        name=name,
        text="Opening hours: 9-5.",
        url="https://acme.example/hours",
        file_url=signed_upload_url(base, name),
        file_name=f"{name}.txt",
        file_content_type="text/plain",
    )
    path = f"/v1/convai/knowledge-base/{source_type}"
    await _lose_answer(harness, path, lost_answer)

    event = await harness.one(command)

    assert event["type"] == "knowledge_document.created", event
    upstream = await container.elevenlabs.list_kb_documents(search=name)
    assert [d["id"] for d in upstream] == [event["document"]["document_id"]]
    assert len(await harness.requests("POST", path)) == 1


async def test_email_template(harness: Harness, container: Container, lost_answer: dict[str, Any]) -> None:
    command = CreateEmailTemplate(
        name=_name("lost_template").replace("-", "_"),
        description="Send the confirmation.",
        subject_template="Confirmed",
        body_template="Dear {{customer_name}}, confirmed.",
        webhook_base_url="https://sb.example/api/v1",
    )
    await _lose_answer(harness, "/v1/convai/tools", lost_answer)

    event = await harness.one(command)

    assert event["type"] == "email_template.created", event
    upstream = await container.elevenlabs.list_tools(search=command.name)
    assert [t["id"] for t in upstream] == [event["tool"]["tool_id"]]
    assert len(await harness.requests("POST", "/v1/convai/tools")) == 1


async def test_nothing_created_is_created_once_more(harness: Harness, container: Container) -> None:
    """A 503 from in front of ElevenLabs (the request never reached it): the lookup finds nothing,
    so the agent is created by a second POST, and still only one exists."""
    command = CreateAgent(name=_name("proxy-503"))
    await harness.fault(method="POST", path_regex="^/v1/convai/agents/create$", status=503)

    event = await harness.one(command)

    assert event["type"] == "agent.created", event
    assert [r["status"] for r in await harness.requests("POST", "/v1/convai/agents/create")] == [503, 200]
    assert len(await container.elevenlabs.list_agents(search=command.name)) == 1
