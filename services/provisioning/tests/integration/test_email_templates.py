"""E-mail templates end to end: the webhook tool upstream, the local table, events and recovery."""

from __future__ import annotations

import uuid

import pytest

from bus.secrets import mint_tool_token
from contracts.provisioning import CreateEmailTemplate, DeleteEmailTemplate, TemplateParameter
from elevenlabs_client import UpstreamError
from provisioning import domain
from provisioning.bootstrap import Container
from provisioning.models import EmailTemplate

from .conftest import KEYRING, Harness, pretend_crashed

pytestmark = pytest.mark.integration

HEADER = "X-Switchboard-Tool-Token"


def _template(name: str | None = None) -> CreateEmailTemplate:
    return CreateEmailTemplate(
        name=name or f"confirm_{uuid.uuid4().hex[:8]}",
        description="Use when the customer confirms their appointment.",
        subject_template="Appointment Confirmed - {{date}} at {{time}}",
        body_template="Dear {{customer_name}},\n\nDate: {{date}}\nTime: {{time}}\n\n{{notes}}",
        parameters=[
            TemplateParameter(name="date", description="The appointment date", required=True),
            TemplateParameter(name="time", description="The appointment time", required=True),
            TemplateParameter(name="notes", description="Any additional notes", required=False),
        ],
        webhook_base_url="https://sb.example/api/v1",
        correlation_id=uuid.uuid4().hex,
    )


async def _row(container: Container, template_id: str) -> EmailTemplate | None:
    async with container.sessionmaker() as session:
        return await session.get(EmailTemplate, template_id)


async def _tool_exists(container: Container, tool_id: str) -> bool:
    try:
        await container.elevenlabs.get_tool(tool_id)
    except UpstreamError as exc:
        if exc.status_code == 404:
            return False
        raise
    return True


async def test_create_makes_a_secret_authenticated_tool_and_emits_the_template(
    harness: Harness, container: Container
) -> None:
    command = _template()
    event = await harness.one(command)

    assert event["type"] == "email_template.created"
    template, tool = event["template"], event["tool"]
    assert template == {
        "template_id": command.name,
        "name": command.name,
        "description": command.description,
        "subject_template": command.subject_template,
        "body_template": command.body_template,
        "parameters": [p.model_dump() for p in command.parameters],
        "tool_id": tool["tool_id"],
        "created_at": template["created_at"],
    }
    assert len(template["created_at"]) == len("2026-01-28T08:38:02.753538")
    assert template["created_at"][10] == "T" and "+" not in template["created_at"]
    assert (tool["name"], tool["purpose"], tool["type"]) == (command.name, "email", "webhook")
    assert tool["created_at_unix"] > 0

    # the token lives only in the workspace secret the tool's header points at
    secrets = await harness.requests("POST", "/v1/convai/secrets")
    assert [r["json"]["name"] for r in secrets] == [domain.secret_name("email", command.message_id)]
    assert secrets[0]["json"]["value"] == mint_tool_token(
        KEYRING, f"email/{command.name}", command.message_id, 1
    )

    upstream = await container.elevenlabs.get_tool(tool["tool_id"])
    config = upstream["tool_config"]
    assert (config["name"], config["description"]) == (command.name, command.description)
    schema = config["api_schema"]
    assert schema["url"] == f"https://sb.example/api/v1/webhook/email/{command.name}"
    assert schema["method"] == "POST"
    body = schema["request_body_schema"]
    described = {
        k: (v["type"], v["description"]) for k, v in body["properties"].items() if k != "conversation_id"
    }
    assert described == {
        "date": ("string", "The appointment date"),
        "time": ("string", "The appointment time"),
        "notes": ("string", "Any additional notes"),
    }
    assert body["properties"]["conversation_id"]["dynamic_variable"] == "system__conversation_id"
    assert sorted(body["required"]) == ["conversation_id", "date", "time"]
    header_secret = domain.tool_secret_id(upstream, HEADER)
    assert header_secret is not None
    listed = {s["name"]: s["secret_id"] for s in await container.elevenlabs.list_secrets()}
    assert listed[domain.secret_name("email", command.message_id)] == header_secret

    row = await _row(container, command.name)
    assert row is not None
    assert (row.tool_id, row.subject_template) == (tool["tool_id"], command.subject_template)
    assert [p["name"] for p in row.parameters] == ["date", "time", "notes"]


async def test_duplicate_name_fails_with_409_and_creates_nothing(harness: Harness) -> None:
    first = _template()
    assert (await harness.one(first))["type"] == "email_template.created"
    await harness.sim.delete("/_sim/requests")

    duplicate = _template(first.name)
    event = await harness.one(duplicate)
    assert event["type"] == "command.failed"
    assert event["command_type"] == "email_template.create"
    assert (event["status_code"], event["error"]) == (409, f"Template already exists: {first.name}")
    assert await harness.requests("POST", "/v1/convai/tools") == []
    assert await harness.requests("POST", "/v1/convai/secrets") == []


async def test_delete_removes_the_tool_and_the_template(harness: Harness, container: Container) -> None:
    command = _template()
    tool_id = (await harness.one(command))["tool"]["tool_id"]

    delete = DeleteEmailTemplate(template_id=command.name, correlation_id=uuid.uuid4().hex)
    event = await harness.one(delete)
    assert event == {
        **event,
        "type": "email_template.deleted",
        "template_id": command.name,
        "tool_id": tool_id,
    }
    assert not await _tool_exists(container, tool_id)
    assert await _row(container, command.name) is None
    deletes = await harness.requests("DELETE", f"/v1/convai/tools/{tool_id}")
    assert len(deletes) == 1

    # the name is free again
    again = await harness.one(_template(command.name))
    assert again["type"] == "email_template.created"
    assert again["tool"]["tool_id"] != tool_id


async def test_delete_unknown_template_fails_with_404(harness: Harness) -> None:
    event = await harness.one(DeleteEmailTemplate(template_id="no_such_template", tool_id="tool_x"))
    assert event["type"] == "command.failed"
    assert event["command_type"] == "email_template.delete"
    assert (event["status_code"], event["error"]) == (404, "Template not found: no_such_template")
    assert await harness.requests("DELETE", "/v1/convai/tools/tool_x") == []


async def test_delete_when_the_tool_is_already_gone_still_deletes_the_template(
    harness: Harness, container: Container
) -> None:
    command = _template()
    tool_id = (await harness.one(command))["tool"]["tool_id"]
    await container.elevenlabs.delete_tool(tool_id)  # e.g. by an interrupted earlier attempt

    event = await harness.one(DeleteEmailTemplate(template_id=command.name))
    assert (event["type"], event["tool_id"]) == ("email_template.deleted", tool_id)
    assert await _row(container, command.name) is None


async def test_redelivered_create_makes_one_tool_and_one_outcome(harness: Harness) -> None:
    command = _template()
    outcomes = await harness.deliver(command, command)
    assert [e["type"] for e in outcomes[command.message_id]] == ["email_template.created"]
    assert len(await harness.requests("POST", "/v1/convai/tools")) == 1
    assert len(await harness.requests("POST", "/v1/convai/secrets")) == 1


async def _create_like_an_earlier_delivery(container: Container, command: CreateEmailTemplate) -> str:
    secret = await container.elevenlabs.create_secret(
        domain.secret_name("email", command.message_id), "token"
    )
    tool = await container.elevenlabs.create_tool(
        domain.email_tool_config(command, str(secret["secret_id"]), HEADER)
    )
    return str(tool["id"])


async def test_recovery_adopts_the_tool_created_before_a_crash(
    harness: Harness, container: Container
) -> None:
    command = _template()
    await pretend_crashed(container, command)
    tool_id = await _create_like_an_earlier_delivery(container, command)
    await harness.sim.delete("/_sim/requests")

    event = await harness.one(command)
    assert event["type"] == "email_template.created"
    assert event["tool"]["tool_id"] == event["template"]["tool_id"] == tool_id
    assert await harness.requests("POST", "/v1/convai/tools") == []
    assert await harness.requests("POST", "/v1/convai/secrets") == []
    row = await _row(container, command.name)
    assert row is not None and row.tool_id == tool_id


async def test_recovery_creates_when_nothing_was_created(harness: Harness, container: Container) -> None:
    command = _template()
    await pretend_crashed(container, command)
    event = await harness.one(command)
    assert event["type"] == "email_template.created"
    assert len(await harness.requests("POST", "/v1/convai/tools")) == 1


async def test_recovery_after_losing_the_name_race_removes_its_own_tool(
    harness: Harness, container: Container
) -> None:
    winner = _template()
    winner_tool = (await harness.one(winner))["tool"]["tool_id"]
    # the loser created its tool, then its final transaction hit the winner's row
    loser = _template(winner.name)
    await pretend_crashed(container, loser)
    orphan = await _create_like_an_earlier_delivery(container, loser)

    event = await harness.one(loser)
    assert (event["status_code"], event["error"]) == (409, f"Template already exists: {winner.name}")
    assert not await _tool_exists(container, orphan)
    assert await _tool_exists(container, winner_tool)
