"""The e-commerce tools over HTTP: projections from real Kafka events, stores as local stand-ins."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
import structlog
from sqlalchemy import update

from bus.secrets import Keyring, message_context, mint_tool_token, new_key
from contracts import topics
from contracts.telephony import CallPlaced, CustomerInfo
from devinfra.bus_harness import wait_until
from devinfra.standins.stores import SHOPIFY_TOKEN, WOO_KEY, WOO_SECRET
from tool_webhooks import domain
from tool_webhooks.models import Conversation

from .conftest import KEYRING, TOOL_BUDGET_S, Harness, Stores

pytestmark = pytest.mark.integration


def woo_credentials(base_url: str, *, secret: str = WOO_SECRET) -> dict[str, Any]:
    return {"platform": "woocommerce", "base_url": base_url, "api_key": WOO_KEY, "api_secret": secret}


def shopify_credentials(base_url: str, *, token: str = SHOPIFY_TOKEN) -> dict[str, Any]:
    return {"platform": "shopify", "base_url": base_url, "api_key": "key", "access_token": token}


async def place_call(
    harness: Harness, credentials: dict[str, Any] | None, *, customer: CustomerInfo | None = None
) -> str:
    """Publish `CallPlaced` as telephony does and wait until the projection has it."""
    conversation_id = f"conv_{uuid.uuid4().hex[:12]}"
    event = _call_placed(conversation_id, credentials, customer=customer)
    await harness.publish(event, topics.TELEPHONY_EVENTS, key=conversation_id)
    await harness.wait_row(Conversation.__table__, conversation_id=conversation_id)  # type: ignore[arg-type]
    return conversation_id


def _call_placed(
    conversation_id: str, credentials: dict[str, Any] | None, *, customer: CustomerInfo | None = None
) -> CallPlaced:
    return CallPlaced(
        conversation_id=conversation_id,
        provider="twilio",
        agent_id="agent_1",
        phone_number_id="phnum_1",
        to_number="+14155550100",
        ecommerce_platform=credentials["platform"] if credentials else None,
        ecommerce_credentials_encrypted=(
            KEYRING.encrypt(
                json.dumps(credentials), context=message_context("ecommerce_credentials_encrypted")
            )
            if credentials
            else None
        ),
        sender_email="shop@example.com",
        customer_info=customer,
        placed_at_unix=int(time.time()),
    )


async def test_woocommerce_products_are_compact_and_voice_friendly(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    response = await harness.tool("ecommerce/products", {"conversation_id": conversation_id, "query": "mug"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3  # TOOL_MAX_RESULTS
    assert body["products"][0] == {
        "name": "Blue Mug",
        "price": "12.50",
        "currency": None,
        "in_stock": True,
        "stock_quantity": 7,
    }
    assert body["products"][1]["in_stock"] is False
    assert "Blue Mug for 12.50, in stock" in body["message"]
    (request,) = stores.woo.requests
    assert request["path"] == "/wp-json/wc/v3/products"
    assert request["query"] == {"per_page": "3", "status": "publish", "search": "mug"}
    # The pinned connection keeps the original host name.
    assert request["headers"]["host"] == stores.woo_url.removeprefix("http://")


async def test_identical_product_lookups_hit_the_cache(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    body = {"conversation_id": conversation_id, "query": "tea", "limit": 2}
    first = await harness.tool("ecommerce/products", body)
    second = await harness.tool("ecommerce/products", body)
    assert first.json() == second.json()
    assert first.json()["products"][0]["name"] == "Jasmine Tea"
    assert len(stores.woo.requests) == 1


async def test_shopify_products(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, shopify_credentials(stores.shopify_url))
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": "green"}
    )
    assert response.json()["products"] == [
        {"name": "Green Mug", "price": "11.00", "currency": "USD", "in_stock": True, "stock_quantity": 2}
    ]
    (request,) = stores.shopify.requests
    assert request["headers"]["x-shopify-access-token"] == SHOPIFY_TOKEN
    assert request["graphql"]["variables"] == {"first": 3, "query": "title:*green*"}


async def test_nothing_found_is_a_spoken_answer(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": "piano"}
    )
    assert response.json() == {
        "products": [],
        "count": 0,
        "message": "I couldn't find any products matching 'piano'.",
    }


async def test_unknown_conversation_or_no_store(harness: Harness, stores: Stores) -> None:
    unknown = await harness.tool("ecommerce/products", {"conversation_id": "conv_nobody", "query": "mug"})
    assert unknown.status_code == 200
    assert unknown.json()["message"] == "I can't look up the store on this call."
    storeless = await place_call(harness, None)
    orders = await harness.tool("ecommerce/orders", {"conversation_id": storeless, "order_number": "1001"})
    assert orders.json() == {
        "orders": [],
        "message": "I can't look up the store on this call.",
        "error": "no_store",
    }
    assert stores.woo.requests == [] and stores.shopify.requests == []


async def test_a_tool_call_that_beats_its_call_placed_event_waits_for_it(
    harness: Harness, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's first tool call can come before tool-webhooks has projected the call's
    `call.placed` (it leaves telephony after the dial's answer, through its outbox and Kafka, and a
    loaded stack can take longer than the ringing). Before, the caller heard "I can't look up the
    store on this call" on a call that had one."""
    # Room for the projection on a slow machine; the wait ends as soon as the row is there.
    monkeypatch.setattr(harness.container.settings, "tool_response_budget_s", 30.0)
    monkeypatch.setattr(harness.container.settings, "call_placed_wait_s", 10.0)
    conversation_id = f"conv_{uuid.uuid4().hex[:12]}"
    with structlog.testing.capture_logs() as logs:
        answer = asyncio.create_task(
            harness.tool("ecommerce/products", {"conversation_id": conversation_id, "query": "mug"})
        )
        await wait_until(
            lambda: any(e["event"] == "tool_webhooks.store.call_placed_pending" for e in logs),
            "the tool call to find no call yet",
        )
        await harness.publish(
            _call_placed(conversation_id, woo_credentials(stores.woo_url)),
            topics.TELEPHONY_EVENTS,
            key=conversation_id,
        )
        response = await answer
    assert response.json()["count"] == 3, response.json()
    assert response.json()["products"][0]["name"] == "Blue Mug"


async def test_store_credentials_are_bound_to_their_conversation_row(
    harness: Harness, stores: Stores
) -> None:
    """Copied into another conversation's row (someone with write access to the database), the
    ciphertext does not decrypt there: that call has no store, and the store sees nothing."""
    owner = await place_call(harness, woo_credentials(stores.woo_url))
    other = await place_call(harness, None)
    table = Conversation.__table__
    row = await harness.row(table, conversation_id=owner)  # type: ignore[arg-type]
    assert row is not None and row["ecommerce_credentials_encrypted"].startswith("sb2.")
    async with harness.container.engine.begin() as connection:
        await connection.execute(
            update(table)  # type: ignore[arg-type]
            .where(table.c.conversation_id == other)
            .values(
                ecommerce_platform="woocommerce",
                ecommerce_credentials_encrypted=row["ecommerce_credentials_encrypted"],
            )
        )

    moved = await harness.tool("ecommerce/products", {"conversation_id": other, "query": "mug"})
    assert moved.json()["error"] == "no_store"
    assert stores.woo.requests == []
    own = await harness.tool("ecommerce/products", {"conversation_id": owner, "query": "mug"})
    assert own.json()["count"] == 3


async def test_store_credentials_travel_bound_to_their_field(harness: Harness, stores: Stores) -> None:
    """A ciphertext made for another field of a message (a Twilio token's) is no store credential."""
    conversation_id = f"conv_{uuid.uuid4().hex[:12]}"
    wrong_field = KEYRING.encrypt(
        json.dumps(woo_credentials(stores.woo_url)), context=message_context("token_encrypted")
    )
    await harness.publish(
        CallPlaced(
            conversation_id=conversation_id,
            provider="twilio",
            agent_id="agent_1",
            phone_number_id="phnum_1",
            to_number="+14155550100",
            ecommerce_platform="woocommerce",
            ecommerce_credentials_encrypted=wrong_field,
            placed_at_unix=int(time.time()),
        ),
        topics.TELEPHONY_EVENTS,
        key=conversation_id,
    )
    row = await harness.wait_row(Conversation.__table__, conversation_id=conversation_id)  # type: ignore[arg-type]
    assert row["ecommerce_credentials_encrypted"] is None
    answer = await harness.tool("ecommerce/products", {"conversation_id": conversation_id, "query": "mug"})
    assert answer.json()["error"] == "no_store" and stores.woo.requests == []


async def test_woocommerce_orders_by_number_and_by_email(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(
        harness, woo_credentials(stores.woo_url), customer=CustomerInfo(email="jane@example.com")
    )
    by_number = await harness.tool(
        "ecommerce/orders", {"conversation_id": conversation_id, "order_number": "#1001"}
    )
    assert by_number.json()["orders"] == [
        {
            "order_number": "1001",
            "status": "processing",
            "items": [{"name": "Blue Mug", "quantity": 2}, {"name": "Jasmine Tea", "quantity": 1}],
            "total": "45.00",
            "currency": "EUR",
            "tracking": [{"carrier": "UPS", "number": "1Z999", "url": None}],
        }
    ]
    assert (
        "Order 1001 is processing (3 items, total 45.00 EUR), tracking number 1Z999"
        in by_number.json()["message"]
    )
    assert stores.woo.requests[0]["path"] == "/wp-json/wc/v3/orders"
    assert stores.woo.requests[0]["query"] == {"search": "1001", "per_page": "20"}
    by_email = await harness.tool(
        "ecommerce/orders", {"conversation_id": conversation_id, "email": "BOB@example.com"}
    )
    assert [o["order_number"] for o in by_email.json()["orders"]] == ["1002"]
    missing = await harness.tool(
        "ecommerce/orders", {"conversation_id": conversation_id, "order_number": "4242"}
    )
    assert missing.json() == {"orders": [], "message": "I couldn't find an order with that number."}
    neither = await harness.tool("ecommerce/orders", {"conversation_id": conversation_id})
    assert neither.json()["error"] == "missing_parameters"


async def test_shopify_orders(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, shopify_credentials(stores.shopify_url))
    response = await harness.tool(
        "ecommerce/orders", {"conversation_id": conversation_id, "order_number": "1001", "postcode": "94103"}
    )
    assert response.json()["orders"] == [
        {
            "order_number": "1001",
            "status": "fulfilled",
            "items": [{"name": "Blue Mug", "quantity": 2}],
            "total": "45.0",
            "currency": "USD",
            "tracking": [{"carrier": "UPS", "number": "1Z111", "url": "https://ups.example/1Z111"}],
        }
    ]
    assert stores.shopify.requests[0]["graphql"]["variables"]["query"] == "name:#1001"
    by_email = await harness.tool(
        "ecommerce/orders", {"conversation_id": conversation_id, "email": "jane@example.com"}
    )
    assert by_email.json()["orders"][0]["order_number"] == "1001"
    nobody = await harness.tool(
        "ecommerce/orders", {"conversation_id": conversation_id, "email": "x@example.com"}
    )
    assert nobody.json() == {"orders": [], "message": "I couldn't find any orders for that e-mail address."}


async def test_wrong_credentials_are_rejected_by_the_stores(harness: Harness, stores: Stores) -> None:
    woo = await place_call(harness, woo_credentials(stores.woo_url, secret="cs_wrong"))
    shop = await place_call(harness, shopify_credentials(stores.shopify_url, token="shpat_wrong"))
    for conversation_id in (woo, shop):
        response = await harness.tool(
            "ecommerce/products", {"conversation_id": conversation_id, "query": uuid.uuid4().hex[:8]}
        )
        assert response.status_code == 200
        assert response.json() == {
            "products": [],
            "count": 0,
            "message": "I can't access the store right now.",
            "error": "unauthorized",
        }


@pytest.mark.parametrize(
    ("platform", "mode", "error", "message"),
    [
        ("woocommerce", "unauthorized", "unauthorized", "I can't access the store right now."),
        ("woocommerce", "not_found", "not_found", "I couldn't reach the store right now."),
        (
            "shopify",
            "rate_limited",
            "rate_limited",
            "The store is busy right now. Please try again in a moment.",
        ),
        ("shopify", "not_found", "not_found", "I couldn't reach the store right now."),
    ],
)
async def test_store_errors_become_spoken_messages(
    harness: Harness, stores: Stores, platform: str, mode: str, error: str, message: str
) -> None:
    if platform == "woocommerce":
        conversation_id, state = await place_call(harness, woo_credentials(stores.woo_url)), stores.woo
    else:
        conversation_id, state = (
            await place_call(harness, shopify_credentials(stores.shopify_url)),
            stores.shopify,
        )
    state.mode, state.retry_after = mode, "30"  # a Retry-After beyond the budget is not waited for
    started = time.monotonic()
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": uuid.uuid4().hex[:8]}
    )
    assert time.monotonic() - started < TOOL_BUDGET_S
    assert response.status_code == 200
    assert response.json()["error"] == error and response.json()["message"] == message
    assert "Traceback" not in response.text


async def test_429_with_a_retry_after_that_fits_is_retried(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, shopify_credentials(stores.shopify_url))
    stores.shopify.mode, stores.shopify.retry_after = "rate_limited_once", "0.2"
    response = await harness.tool("ecommerce/products", {"conversation_id": conversation_id, "query": "blue"})
    assert response.json()["products"][0]["name"] == "Blue Mug"
    assert len(stores.shopify.requests) == 2


@pytest.mark.parametrize("tool", ["ecommerce/products", "ecommerce/orders"])
async def test_slow_store_answers_within_the_budget(harness: Harness, stores: Stores, tool: str) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    stores.woo.mode = "slow"
    started = time.monotonic()
    response = await harness.tool(
        tool, {"conversation_id": conversation_id, "query": uuid.uuid4().hex[:8], "order_number": "1001"}
    )
    elapsed = time.monotonic() - started
    assert elapsed < TOOL_BUDGET_S + 0.5
    assert response.status_code == 200
    assert response.json()["error"] == "timeout"
    assert response.json()["message"] == "The store is taking too long to answer right now."


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "v1.nonce.0000000000000000000000000000000000000000000000000000000000000000",
        "garbage",
        "route-mismatch",
    ],
)
async def test_missing_or_forged_tool_token_is_401_and_the_store_sees_nothing(
    harness: Harness, stores: Stores, token: str | None
) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    if token == "route-mismatch":  # a live tool's token, but that tool calls the orders route
        token = (await harness.create_tool("ecommerce/orders"))[2]
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": "mug"}, token=token
    )
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": "Unauthorized tool call",
        "detail": "The tool token is missing, invalid, revoked or expired",
    }
    _, token_id, _ = await harness.create_tool("ecommerce/products")
    forged_key = mint_tool_token(Keyring(new_key()), "ecommerce/products", token_id, 1)
    other = await harness.tool("ecommerce/products", {"conversation_id": conversation_id}, token=forged_key)
    assert other.status_code == 401
    assert stores.woo.requests == []


async def test_test_endpoint_echoes_without_auth(harness: Harness) -> None:
    response = await harness.app.post("/api/v1/webhook/test", json={"hello": "world"})
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok" and body["echo"] == {"hello": "world"}
    assert body["service"] == "tool-webhooks" and body["version"]
    assert body["time"].endswith("+00:00")
    empty = await harness.app.post("/api/v1/webhook/test", content=b"not json")
    assert empty.json()["echo"] is None


async def test_odd_bodies_get_spoken_answers(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    huge_limit = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": "rack", "limit": 1e308}
    )
    assert huge_limit.json()["products"][0]["name"] == "Mug Rack"
    nested = await harness.app.post(
        "/api/v1/webhook/ecommerce/products",
        content=b"[" * 30000 + b"]" * 30000,
        headers={domain.TOOL_TOKEN_HEADER: (await harness.create_tool("ecommerce/products"))[2]},
    )
    assert nested.status_code == 400 and nested.json()["error"] == "bad_request"
    not_object = await harness.tool("ecommerce/orders", ["conversation_id"])
    assert not_object.status_code == 400


async def test_oversized_store_response_is_cut_off(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    stores.woo.mode = "huge"
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": uuid.uuid4().hex[:8]}
    )
    assert response.json()["error"] == "too_large"
    assert response.json()["message"] == "I couldn't reach the store right now."


async def test_every_error_tool_webhooks_answers_is_in_the_contract_format(harness: Harness) -> None:
    """Its own refusals (a body that is not an object, one over 64 KiB) and the framework's (no such
    route, a method the route does not take) are `{"success": false, "error", "detail"}`: the
    tool's refusals carried `message` instead, the framework's FastAPI's `{"detail": ...}`."""
    token = (await harness.create_tool("ecommerce/products"))[2]
    headers = {domain.TOOL_TOKEN_HEADER: token}
    answers = {
        400: await harness.app.post("/api/v1/webhook/ecommerce/products", content=b"[1]", headers=headers),
        413: await harness.app.post(
            "/api/v1/webhook/ecommerce/products", content=b"x" * 70_000, headers=headers
        ),
        404: await harness.app.post("/api/v1/webhook/nothing-here", json={}),
        405: await harness.app.get("/api/v1/webhook/ecommerce/products"),
    }
    for status, response in answers.items():
        assert response.status_code == status, response.text
        body = response.json()
        assert body["success"] is False and body["error"] and set(body) <= {"success", "error", "detail"}
    assert answers[400].json()["detail"] == "I couldn't read that request."
    assert answers[405].headers["allow"] == "POST"
