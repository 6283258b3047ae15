"""Every command type end to end: Kafka in, ElevenLabs simulator, outbox, Kafka out."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from bus.secrets import mint_tool_token
from contracts.provisioning import (
    CreateAgent,
    CreateEcommerceTools,
    CreateKnowledgeDocument,
    CreateWebhookTool,
    DeleteAgent,
    DeleteKnowledgeDocument,
    DeleteTool,
    ToolParameter,
    UpdateAgent,
)
from provisioning import domain

from .conftest import KEYRING, Harness, signed_upload_url

pytestmark = pytest.mark.integration


def _cid() -> str:
    return uuid.uuid4().hex


async def test_ecommerce_tools_are_created_with_secret_token_headers(harness: Harness) -> None:
    command = CreateEcommerceTools(webhook_base_url="https://sb.example/api/v1", correlation_id=_cid())
    event = await harness.one(command)

    assert event["type"] == "ecommerce_tools.created"
    products, orders = event["products_tool"], event["orders_tool"]
    assert (products["name"], products["purpose"]) == ("get_products", "ecommerce_products")
    assert (orders["name"], orders["purpose"]) == ("get_orders", "ecommerce_orders")
    schema = products["tool_config"]["api_schema"]
    assert schema["url"] == "https://sb.example/api/v1/webhook/ecommerce/products"

    secrets = await harness.requests("POST", "/v1/convai/secrets")
    assert [r["json"]["name"] for r in secrets] == [
        domain.secret_name("products", command.message_id),
        domain.secret_name("orders", command.message_id),
    ]
    assert secrets[0]["json"]["value"] == mint_tool_token(
        KEYRING, "ecommerce/products", command.message_id, 1
    )
    assert event["products_tool"]["token"] == {
        "token_id": command.message_id,
        "route": "ecommerce/products",
        "generation": 1,
    }
    created = await harness.requests("POST", "/v1/convai/tools")
    assert len(created) == 2
    header = created[0]["json"]["tool_config"]["api_schema"]["request_headers"]["X-Switchboard-Tool-Token"]
    assert set(header) == {"secret_id"}
    # every upstream call carries the command's correlation id
    assert all(
        {k.lower(): v for k, v in r["headers"].items()}.get("x-correlation-id") == command.correlation_id
        for r in secrets + created
    )


async def test_custom_webhook_tool_and_delete(harness: Harness) -> None:
    command = CreateWebhookTool(
        name="check_inventory",
        description="Check stock when the caller asks about availability.",
        webhook_url="https://api.example/inventory",
        parameters=[ToolParameter(name="product_id", description="The product", required=True)],
        correlation_id=_cid(),
    )
    event = await harness.one(command)
    assert event["type"] == "tool.created"
    tool_id = event["tool"]["tool_id"]
    sent = (await harness.requests("POST", "/v1/convai/tools"))[0]["json"]["tool_config"]["api_schema"]
    assert "request_headers" not in sent

    deleted = await harness.one(DeleteTool(tool_id=tool_id, correlation_id=_cid()))
    assert deleted == {**deleted, "type": "tool.deleted", "tool_id": tool_id}

    missing = await harness.one(DeleteTool(tool_id=tool_id, correlation_id=_cid()))
    assert missing["type"] == "command.failed"
    assert (missing["status_code"], missing["error"]) == (404, f"Tool not found: {tool_id}")
    assert missing["command_type"] == "tool.delete"


async def test_knowledge_documents_and_agent_lifecycle(
    harness: Harness, file_server: tuple[str, dict[str, bytes]]
) -> None:
    text = await harness.one(
        CreateKnowledgeDocument(
            source_type="text", name="FAQ", text="Q: hours? A: 9-5", correlation_id=_cid()
        )
    )
    assert text["type"] == "knowledge_document.created"
    doc = text["document"]
    assert (doc["name"], doc["source_type"], doc["type"]) == ("FAQ", "text", "text")

    url = await harness.one(
        CreateKnowledgeDocument(source_type="url", url="https://acme.example/about", correlation_id=_cid())
    )
    assert url["document"]["name"] == "https://acme.example/about"

    base, files = file_server
    content = b"Product catalogue\nWidget: 10 EUR\n"
    files["/internal/uploads/cat"] = content
    upload = await harness.one(
        CreateKnowledgeDocument(
            source_type="file",
            file_url=signed_upload_url(base, "cat"),
            file_name="catalogue.txt",
            file_content_type="text/plain",
            file_sha256=hashlib.sha256(content).hexdigest(),
            correlation_id=_cid(),
        )
    )
    assert upload["document"]["type"] == "file"
    assert upload["document"]["name"] == "catalogue.txt"

    bad_sum = await harness.one(
        CreateKnowledgeDocument(
            source_type="file",
            file_url=signed_upload_url(base, "cat"),
            file_name="catalogue.txt",
            file_sha256="0" * 64,
            correlation_id=_cid(),
        )
    )
    assert (bad_sum["type"], bad_sum["status_code"]) == ("command.failed", 422)

    tools = await harness.one(
        CreateEcommerceTools(webhook_base_url="https://sb/api/v1", correlation_id=_cid())
    )
    tool_id = tools["products_tool"]["tool_id"]
    doc_ids = [doc["document_id"], url["document"]["document_id"]]

    await harness.sim.delete("/_sim/requests")
    create = CreateAgent(
        name="Support",
        language="en",
        voice_id="21m00Tcm4TlvDq8ikWAM",
        first_message="Hello!",
        system_prompt="Be helpful.",
        tool_ids=[tool_id],
        knowledge_base_ids=doc_ids,
        correlation_id=_cid(),
    )
    created = await harness.one(create)
    assert created["type"] == "agent.created"
    agent = created["agent"]
    assert f"sb-cmd-{create.message_id}" in agent["tags"]
    prompt = agent["conversation_config"]["agent"]["prompt"]
    assert prompt["tool_ids"] == [tool_id]
    assert [(k["id"], k["name"]) for k in prompt["knowledge_base"]] == [
        (doc["document_id"], "FAQ"),
        (url["document"]["document_id"], "https://acme.example/about"),
    ]
    overrides = agent["platform_settings"]["overrides"]["conversation_config_override"]
    assert overrides["agent"]["first_message"] is True
    # known documents come from the local table: no upstream GET for them
    assert await harness.requests("GET", "/v1/convai/knowledge-base/") == []

    agent_id = agent["agent_id"]
    updated = await harness.one(
        UpdateAgent(agent_id=agent_id, first_message="Ciao!", tool_ids=[], correlation_id=_cid())
    )
    assert updated["type"] == "agent.updated"
    assert updated["agent"]["conversation_config"]["agent"]["first_message"] == "Ciao!"
    assert updated["agent"]["conversation_config"]["agent"]["prompt"]["tool_ids"] == []
    assert updated["agent"]["conversation_config"]["agent"]["prompt"]["prompt"] == "Be helpful."

    unknown_doc = await harness.one(CreateAgent(name="X", knowledge_base_ids=["nope"], correlation_id=_cid()))
    assert (unknown_doc["status_code"], unknown_doc["error"]) == (
        404,
        "Knowledge base document not found: nope",
    )

    assert (await harness.one(DeleteAgent(agent_id=agent_id)))["type"] == "agent.deleted"
    gone = await harness.one(DeleteAgent(agent_id=agent_id))
    assert (gone["status_code"], gone["error"]) == (404, f"Agent not found: {agent_id}")
    missing_update = await harness.one(UpdateAgent(agent_id=agent_id, name="n"))
    assert missing_update["status_code"] == 404

    deleted = await harness.one(DeleteKnowledgeDocument(document_id=doc["document_id"]))
    assert deleted["type"] == "knowledge_document.deleted"
    again = await harness.one(DeleteKnowledgeDocument(document_id=doc["document_id"]))
    assert (again["status_code"], again["error"]) == (404, f"Document not found: {doc['document_id']}")
