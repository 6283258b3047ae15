"""Mid-call tool tokens are bound to their tool (issue 12): another tool's token is refused, a
deleted tool's tokens are refused, a rotated token works at once and the previous one only during
its grace period. Tool state comes from provisioning's events over real Kafka."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select, text

from bus.outbound import OutboundClient
from bus.secrets import mint_tool_token
from contracts import topics
from contracts.provisioning import (
    EcommerceToolsCreated,
    EmailTemplateCreated,
    EmailTemplateDeleted,
    EmailTemplateRecord,
    ToolCreated,
    ToolDeleted,
    ToolRecord,
    ToolToken,
    ToolTokenRotated,
)
from tool_webhooks.bootstrap import Container
from tool_webhooks.models import PROJECTION_CONSUMER, ToolTokenState, inbox
from tool_webhooks.service import ToolService
from tool_webhooks.settings import Settings
from tool_webhooks.stores import StoreClient
from tool_webhooks.uow import UnitOfWork

from .conftest import KEYRING, Harness

pytestmark = pytest.mark.integration

ORDERS = "ecommerce/orders"
PRODUCTS = "ecommerce/products"
REFUSED = {
    "success": False,
    "error": "Unauthorized tool call",
    "detail": "The tool token is missing, invalid, revoked or expired",
}


async def _status(harness: Harness, route: str, token: str) -> int:
    return (await harness.tool(route, {"conversation_id": "conv_nobody"}, token=token)).status_code


async def _until_status(harness: Harness, route: str, token: str, status: int, what: str) -> None:
    async def reached() -> bool:
        return await _status(harness, route, token) == status

    await harness.until(reached, what)


async def _rotate(
    harness: Harness, tool_id: str, token_id: str, route: str, generation: int, until: int
) -> None:
    event = ToolTokenRotated(
        tool_id=tool_id,
        tool_config={},
        token=ToolToken(token_id=token_id, route=route, generation=generation),
        previous_valid_until_unix=until,
    )
    await harness.publish(event, topics.PROVISIONING_EVENTS, key=tool_id)
    await harness.wait_row(ToolTokenState.__table__, tool_id=tool_id, generation=generation)  # type: ignore[arg-type]


async def _projected(harness: Harness, message_id: str) -> bool:
    async with harness.container.engine.connect() as connection:
        claimed = await connection.scalar(
            select(inbox.c.message_id).where(
                inbox.c.consumer == PROJECTION_CONSUMER, inbox.c.message_id == message_id
            )
        )
    return claimed is not None


def _tools_at(
    container: Container, clock: Callable[[], float], settings: Settings | None = None
) -> ToolService:
    """The tool service as the container wires it, reading the time from `clock`."""
    settings = settings or container.settings
    outbound = OutboundClient(
        httpx.AsyncClient(), allow_http=False, allow_hosts=frozenset(), max_response_bytes=1024
    )
    return ToolService(
        lambda: UnitOfWork(container.sessionmaker, container.bus),
        StoreClient(outbound, shopify_api_version=settings.shopify_api_version),
        settings,
        clock=clock,
    )


async def test_a_tools_token_opens_only_its_own_route(harness: Harness) -> None:
    """An e-commerce pair as provisioning announces it: each token opens its own tool's route only."""
    token_id = uuid.uuid4().hex
    records = {
        route: ToolRecord(
            tool_id=f"tool_{uuid.uuid4().hex[:12]}",
            name=name,
            purpose=purpose,
            created_at_unix=int(time.time()),
            token=ToolToken(token_id=token_id, route=route, generation=1),
        )
        for route, name, purpose in (
            (PRODUCTS, "get_products", "ecommerce_products"),
            (ORDERS, "get_orders", "ecommerce_orders"),
        )
    }
    event = EcommerceToolsCreated(products_tool=records[PRODUCTS], orders_tool=records[ORDERS])
    await harness.publish(event, topics.PROVISIONING_EVENTS, key=event.message_id)
    for record in records.values():
        await harness.wait_row(ToolTokenState.__table__, tool_id=record.tool_id)  # type: ignore[arg-type]
    products, orders = (mint_tool_token(KEYRING, route, token_id, 1) for route in (PRODUCTS, ORDERS))

    assert await _status(harness, PRODUCTS, products) == 200
    assert await _status(harness, ORDERS, orders) == 200
    refused = await harness.tool(ORDERS, {"conversation_id": "conv_nobody"}, token=products)
    assert (refused.status_code, refused.json()) == (401, REFUSED)
    assert await _status(harness, PRODUCTS, orders) == 401
    # an e-mail template's token opens neither the stores nor another template
    _, _, email = await harness.create_tool("email/confirm_a")
    for route in (PRODUCTS, ORDERS, "email/confirm_b"):
        assert await _status(harness, route, email) == 401


async def test_tool_events_fetched_together_are_projected_in_one_transaction(harness: Harness) -> None:
    """The projections are consumed in batches: tool events one fetch returned (a replay among
    them) are projected in ONE transaction, each tool's token once."""
    created = [
        ToolCreated(
            tool=ToolRecord(
                tool_id=f"tool_{uuid.uuid4().hex[:12]}",
                name="send_email",
                purpose="email",
                created_at_unix=int(time.time()),
                token=ToolToken(token_id=uuid.uuid4().hex, route=f"email/batch_{n}", generation=1),
            )
        )
        for n in range(5)
    ]
    await harness.publish_together([*created, created[2]], topics.PROVISIONING_EVENTS)
    for event in created:
        await harness.wait_row(ToolTokenState.__table__, tool_id=event.tool.tool_id)  # type: ignore[arg-type]
    async with harness.container.sessionmaker() as session:
        writers = (
            await session.scalars(
                text("SELECT xmin::text FROM tool_webhooks.tool_tokens WHERE tool_id = ANY(:t)"),
                {"t": [event.tool.tool_id for event in created]},
            )
        ).all()
    assert len(writers) == len(created)
    assert len(set(writers)) == 1, f"projected in {len(set(writers))} transactions"
    assert all([await _projected(harness, event.message_id) for event in created])


async def test_a_token_of_a_tool_never_announced_is_refused(harness: Harness) -> None:
    """Signed by this deployment, for this route, but naming no tool we know."""
    token = mint_tool_token(KEYRING, ORDERS, uuid.uuid4().hex, 1)
    assert await _status(harness, ORDERS, token) == 401


async def test_deleting_a_tool_revokes_its_tokens(harness: Harness) -> None:
    tool_id, token_id, token = await harness.create_tool(ORDERS)
    newer = mint_tool_token(KEYRING, ORDERS, token_id, 2)  # even one a rotation would have made
    assert await _status(harness, ORDERS, token) == 200

    deleted = ToolDeleted(tool_id=tool_id)
    await harness.publish(deleted, topics.PROVISIONING_EVENTS, key=tool_id)
    await _until_status(harness, ORDERS, token, 401, "the deleted tool's token to be refused")
    response = await harness.tool(ORDERS, {"conversation_id": "conv_nobody"}, token=token)
    assert response.json() == REFUSED
    assert await _status(harness, ORDERS, newer) == 401
    # redelivered, or its creation announced late: it stays deleted
    await harness.publish(deleted, topics.PROVISIONING_EVENTS, key=tool_id)
    late = ToolRecord(
        tool_id=tool_id,
        name="get_orders",
        purpose="ecommerce_orders",
        created_at_unix=0,
        token=ToolToken(token_id=token_id, route=ORDERS, generation=1),
    )
    await _rotate(harness, tool_id, token_id, ORDERS, 3, int(time.time()) + 3600)
    created = ToolCreated(tool=late)
    await harness.publish(created, topics.PROVISIONING_EVENTS, key=tool_id)
    await harness.until(lambda: _projected(harness, created.message_id), "the late creation to be projected")
    for generation in (1, 3):
        assert await _status(harness, ORDERS, mint_tool_token(KEYRING, ORDERS, token_id, generation)) == 401


async def test_deleting_an_email_template_revokes_its_tools_token(harness: Harness) -> None:
    tool_id, _, token = await harness.create_tool("email/receipt")
    assert await _status(harness, "email/receipt", token) == 200
    await harness.publish(
        EmailTemplateDeleted(template_id="receipt", tool_id=tool_id),
        topics.PROVISIONING_EVENTS,
        key="receipt",
    )
    await _until_status(harness, "email/receipt", token, 401, "the template tool's token to be refused")


async def test_an_email_template_announced_with_its_tool_accepts_that_tools_token(harness: Harness) -> None:
    token_id, tool_id = uuid.uuid4().hex, f"tool_{uuid.uuid4().hex[:12]}"
    route = "email/welcome"
    event = EmailTemplateCreated(
        template=EmailTemplateRecord(
            template_id="welcome",
            name="welcome",
            description="d",
            subject_template="s",
            body_template="b",
            tool_id=tool_id,
            created_at="2026-12-01T00:00:00+00:00",
        ),
        tool=ToolRecord(
            tool_id=tool_id,
            name="welcome",
            purpose="email",
            created_at_unix=0,
            token=ToolToken(token_id=token_id, route=route, generation=1),
        ),
    )
    await harness.publish(event, topics.PROVISIONING_EVENTS, key="welcome")
    await harness.wait_row(ToolTokenState.__table__, tool_id=tool_id)  # type: ignore[arg-type]
    assert await _status(harness, route, mint_tool_token(KEYRING, route, token_id, 1)) == 200


async def test_a_rotated_token_works_at_once_and_the_previous_one_only_within_its_grace(
    harness: Harness,
) -> None:
    tool_id, token_id, first = await harness.create_tool(ORDERS)
    second = mint_tool_token(KEYRING, ORDERS, token_id, 2)
    # provisioning switched the tool upstream before its event arrived here: the new token works
    assert await _status(harness, ORDERS, second) == 200

    rotated_at = time.time()
    await _rotate(harness, tool_id, token_id, ORDERS, 2, int(rotated_at) + 300)
    assert await _status(harness, ORDERS, first) == 200  # calls under way with it finish
    assert await _status(harness, ORDERS, second) == 200
    # the same tool, the same rows, read at the end of the grace period (a clock passed in)
    later = _tools_at(harness.container, lambda: rotated_at + 301)
    assert await later.tool_token_refusal(ORDERS, first) == "superseded"
    assert await later.tool_token_refusal(ORDERS, second) is None
    within = _tools_at(harness.container, lambda: rotated_at + 299)
    assert await within.tool_token_refusal(ORDERS, first) is None

    # a second rotation: the first token is out at once, the second has its own grace period
    await _rotate(harness, tool_id, token_id, ORDERS, 3, int(time.time()) - 1)
    third = mint_tool_token(KEYRING, ORDERS, token_id, 3)
    assert await _status(harness, ORDERS, third) == 200
    assert await _status(harness, ORDERS, second) == 401
    assert await _status(harness, ORDERS, first) == 401


async def test_version_1_tokens_are_refused_unless_an_upgrade_asks_for_them(harness: Harness) -> None:
    """Route-bound, never expiring tokens of the old code (HMAC keyed by the setting itself)."""
    key = harness.settings.switchboard_secret_key.get_secret_value()
    v1 = f"v1.n1.{hmac.new(key.encode(), f'{ORDERS}|n1'.encode(), hashlib.sha256).hexdigest()}"
    assert await _status(harness, ORDERS, v1) == 401
    upgrading = _tools_at(
        harness.container, time.time, harness.settings.model_copy(update={"accept_v1_tool_tokens": True})
    )
    assert await upgrading.tool_token_refusal(ORDERS, v1) is None
    assert await upgrading.tool_token_refusal(PRODUCTS, v1) == "invalid"
