"""Rotating a tool's token (issue 12) against the simulator: a new workspace secret holding the next
generation, the tool's header pointed at it upstream, the old secret deleted, and the grace period
of the previous token in the event tool-webhooks reads."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from bus.secrets import mint_tool_token
from contracts.provisioning import (
    CreateCallTool,
    CreateEcommerceTools,
    CreateWebhookTool,
    DeleteTool,
    RotateToolToken,
)
from provisioning import domain
from provisioning.bootstrap import Container
from provisioning.models import ToolToken

from .conftest import KEYRING, Harness

pytestmark = pytest.mark.integration

HEADER = "X-Switchboard-Tool-Token"


def _cid() -> str:
    return uuid.uuid4().hex


async def _secret_values(harness: Harness) -> dict[str, str]:
    """Workspace secret name -> the value we sent upstream (the simulator's request log)."""
    return {
        r["json"]["name"]: r["json"]["value"] for r in await harness.requests("POST", "/v1/convai/secrets")
    }


async def _row(container: Container, tool_id: str) -> ToolToken | None:
    async with container.sessionmaker() as session:
        return await session.get(ToolToken, tool_id)


async def test_rotation_gives_the_next_generation_in_a_new_secret_and_drops_the_old(
    harness: Harness, container: Container
) -> None:
    create = CreateEcommerceTools(webhook_base_url="https://sb.example/api/v1", correlation_id=_cid())
    created = await harness.one(create)
    orders = created["orders_tool"]
    tool_id, token_id = orders["tool_id"], create.message_id
    first_secret = domain.tool_secret_id(orders, HEADER)
    assert orders["token"] == {"token_id": token_id, "route": "ecommerce/orders", "generation": 1}

    before = int(time.time())
    command = RotateToolToken(tool_id=tool_id, correlation_id=_cid())
    rotated = await harness.one(command)
    after = int(time.time())

    assert rotated["type"] == "tool.token_rotated", rotated
    assert rotated["token"] == {"token_id": token_id, "route": "ecommerce/orders", "generation": 2}
    grace = harness.settings.tool_token_grace_s
    assert before + grace <= rotated["previous_valid_until_unix"] <= after + grace
    name = domain.secret_name(domain.ROTATED_SHORT_NAME, command.message_id)
    assert (await _secret_values(harness))[name] == mint_tool_token(KEYRING, "ecommerce/orders", token_id, 2)
    upstream = await container.elevenlabs.get_tool(tool_id)
    new_secret = domain.tool_secret_id(upstream, HEADER)
    assert new_secret not in (None, first_secret)
    assert domain.tool_secret_id({"tool_config": rotated["tool_config"]}, HEADER) == new_secret
    # the rest of the tool is as it was
    assert upstream["tool_config"]["api_schema"]["url"] == orders["tool_config"]["api_schema"]["url"]
    assert upstream["tool_config"]["name"] == "get_orders"
    listed = {s["secret_id"] for s in await container.elevenlabs.list_secrets()}
    assert first_secret not in listed and new_secret in listed
    row = await _row(container, tool_id)
    assert row is not None and (row.token_id, row.generation, row.secret_id) == (token_id, 2, new_secret)

    again = await harness.one(RotateToolToken(tool_id=tool_id, correlation_id=_cid()))
    assert again["token"]["generation"] == 3
    # the products tool was left alone
    products = await container.elevenlabs.get_tool(created["products_tool"]["tool_id"])
    assert domain.tool_secret_id(products, HEADER) == domain.tool_secret_id(created["products_tool"], HEADER)

    await harness.one(DeleteTool(tool_id=tool_id, correlation_id=_cid()))
    assert await _row(container, tool_id) is None
    gone = await harness.one(RotateToolToken(tool_id=tool_id, correlation_id=_cid()))
    assert (gone["type"], gone["status_code"]) == ("command.failed", 404)


async def test_a_tool_from_before_recorded_tokens_starts_a_lineage_of_its_own(
    harness: Harness, container: Container
) -> None:
    """Created by an earlier version: its header points at a secret, we recorded nothing."""
    client = container.elevenlabs
    secret = await client.create_secret(f"legacy-{uuid.uuid4().hex[:8]}", "v1.old.token")
    config: dict[str, Any] = domain.ecommerce_tool_config(
        "https://sb.example/api/v1", domain.PRODUCTS_TOOL, str(secret["secret_id"]), HEADER
    )
    tool_id = str((await client.create_tool(config))["id"])

    command = RotateToolToken(tool_id=tool_id, correlation_id=_cid())
    rotated = await harness.one(command)

    assert rotated["token"] == {
        "token_id": command.message_id,
        "route": "ecommerce/products",
        "generation": 1,
    }
    name = domain.secret_name(domain.ROTATED_SHORT_NAME, command.message_id)
    expected = mint_tool_token(KEYRING, "ecommerce/products", command.message_id, 1)
    assert (await _secret_values(harness))[name] == expected


async def test_a_tool_without_a_token_or_unknown_cannot_be_rotated(harness: Harness) -> None:
    custom = await harness.one(
        CreateWebhookTool(
            name="check_inventory",
            description="Check stock.",
            webhook_url="https://api.example/inventory",
            correlation_id=_cid(),
        )
    )
    refused = await harness.one(RotateToolToken(tool_id=custom["tool"]["tool_id"], correlation_id=_cid()))
    assert (refused["type"], refused["status_code"], refused["error"]) == (
        "command.failed",
        422,
        "Tool has no token",
    )
    unknown = await harness.one(RotateToolToken(tool_id="tool_nobody", correlation_id=_cid()))
    assert (unknown["status_code"], unknown["error"]) == (404, "Tool not found: tool_nobody")


@pytest.mark.parametrize(
    ("kind", "name", "route"),
    [("callback", "schedule_callback", "calls/callback"), ("opt_out", "opt_out", "calls/opt-out")],
)
async def test_a_call_control_tool_carries_its_own_token_and_rotates(
    harness: Harness, container: Container, kind: str, name: str, route: str
) -> None:
    create = CreateCallTool(kind=kind, webhook_base_url="https://sb.example/api/v1", correlation_id=_cid())  # type: ignore[arg-type]
    created = await harness.one(create)
    assert created["type"] == "tool.created", created
    tool = created["tool"]
    assert (tool["name"], tool["purpose"]) == (name, kind)
    assert tool["token"] == {"token_id": create.message_id, "route": route, "generation": 1}
    assert tool["tool_config"]["api_schema"]["url"] == f"https://sb.example/api/v1/webhook/{route}"
    secret = domain.secret_name(domain.CALL_TOOLS[kind].short_name, create.message_id)
    assert (await _secret_values(harness))[secret] == mint_tool_token(KEYRING, route, create.message_id, 1)
    rotated = await harness.one(RotateToolToken(tool_id=tool["tool_id"], correlation_id=_cid()))
    assert rotated["token"] == {"token_id": create.message_id, "route": route, "generation": 2}
