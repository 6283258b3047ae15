"""Store lookups as real shops answer them (issue 11): order numbers that are not ids, a host that
strips the Authorization header, Shopify's cost throttle inside an HTTP 200, and orders read out
only to the caller they belong to. Stores are the local stand-ins, over real HTTP (and HTTPS)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from bus.outbound import OutboundClient
from contracts.telephony import CustomerInfo
from devinfra.standins.stores import WOO_KEY, WOO_SECRET, StoreState, serve, woo_app
from devinfra.standins.tls import leaf_files, make_pki
from tool_webhooks import domain
from tool_webhooks.stores import StoreClient, StoreCredentials, StoreError

from .conftest import Harness, Stores
from .test_ecommerce_tools import place_call, shopify_credentials, woo_credentials

pytestmark = pytest.mark.integration

JANE_ORDER = {
    "order_number": "1001",
    "status": "processing",
    "items": [{"name": "Blue Mug", "quantity": 2}, {"name": "Jasmine Tea", "quantity": 1}],
    "total": "45.00",
    "currency": "EUR",
    "tracking": [{"carrier": "UPS", "number": "1Z999", "url": None}],
}
NOT_VERIFIED = {"orders": [], "message": domain.NOT_VERIFIED_MESSAGE, "error": "not_verified"}


async def ask_order(harness: Harness, conversation_id: str, **fields: str) -> dict[str, Any]:
    response = await harness.tool("ecommerce/orders", {"conversation_id": conversation_id, **fields})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# ---- order numbers are not ids ------------------------------------------------------------------


async def test_woocommerce_order_is_found_by_its_number_not_by_the_id_with_that_value(
    harness: Harness, stores: Stores
) -> None:
    """Sequential numbering: order #1001 has id 1187, and the order with id 1001 is #1046."""
    jane = await place_call(
        harness, woo_credentials(stores.woo_url), customer=CustomerInfo(email="jane@example.com")
    )
    assert (await ask_order(harness, jane, order_number="1001"))["orders"] == [JANE_ORDER]
    assert [r["path"] for r in stores.woo.requests] == ["/wp-json/wc/v3/orders"]
    assert stores.woo.requests[0]["query"]["search"] == "1001"

    carol = await place_call(
        harness, woo_credentials(stores.woo_url), customer=CustomerInfo(email="carol@example.com")
    )
    (order,) = (await ask_order(harness, carol, order_number="#1046"))["orders"]
    assert (order["order_number"], order["status"]) == ("1046", "on hold")


async def test_search_hits_on_other_fields_are_not_the_order(harness: Harness, stores: Stores) -> None:
    """`search=1001` also finds #1050 (postcode 10010, phone …1001): only the exact number counts, so
    Dan, whose order #1050 is, hears nothing about #1001 (Jane's) nor his own."""
    dan = await place_call(
        harness, woo_credentials(stores.woo_url), customer=CustomerInfo(email="dan@example.com")
    )
    assert await ask_order(harness, dan, order_number="1001") == NOT_VERIFIED
    missing = await ask_order(harness, dan, order_number="10010")
    assert missing == {"orders": [], "message": "I couldn't find an order with that number."}
    (own,) = (await ask_order(harness, dan, order_number="order 1050"))["orders"]
    assert own["order_number"] == "1050"


# ---- who may hear an order ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("customer", "said"),
    [
        (CustomerInfo(email="jane@example.com"), {}),  # the store has Jane@Example.com
        (CustomerInfo(phone="+14155550100"), {}),  # the store has (415) 555-0100
        (CustomerInfo(phone="+1 415 555 0100", email="other@example.com"), {}),
        (None, {"email": " JANE@example.COM "}),
        (None, {"postcode": "sw1a1aa"}),  # the store has SW1A 1AA
        (None, {"postcode": "SW1A-1AA"}),
        (CustomerInfo(email="someone@example.com"), {"postcode": "Sw1A 1aA"}),
    ],
)
async def test_an_order_is_read_out_to_the_caller_it_belongs_to(
    harness: Harness, stores: Stores, customer: CustomerInfo | None, said: dict[str, str]
) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url), customer=customer)
    answer = await ask_order(harness, conversation_id, order_number="#1001", **said)
    assert answer["orders"] == [JANE_ORDER]
    assert "Order 1001 is processing" in answer["message"]


@pytest.mark.parametrize(
    ("customer", "said"),
    [
        (None, {}),  # a number alone proves nothing: numbers are sequential
        (CustomerInfo(email="bob@example.com", phone="+33142685300"), {}),
        (None, {"email": "jane@example.org"}),
        (None, {"postcode": "SW1A 1AB"}),
        (CustomerInfo(phone="+14155550199"), {"postcode": "94103"}),
        (CustomerInfo(phone="0100"), {}),  # a few digits are not Jane's (415) 555-0100
    ],
)
async def test_a_strangers_order_is_not_read_out(
    harness: Harness, stores: Stores, customer: CustomerInfo | None, said: dict[str, str]
) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url), customer=customer)
    assert await ask_order(harness, conversation_id, order_number="1001", **said) == NOT_VERIFIED


async def test_a_stranger_hears_no_order_the_store_finds_by_number(harness: Harness, stores: Stores) -> None:
    """Jane asks for #1002 (Bob's, found by the store on either platform): not read out."""
    woo = await place_call(
        harness, woo_credentials(stores.woo_url), customer=CustomerInfo(email="jane@example.com")
    )
    assert await ask_order(harness, woo, order_number="1002") == NOT_VERIFIED
    shop = await place_call(
        harness, shopify_credentials(stores.shopify_url), customer=CustomerInfo(email="jane@example.com")
    )
    assert await ask_order(harness, shop, order_number="#1002") == NOT_VERIFIED
    stranger = await place_call(harness, shopify_credentials(stores.shopify_url))
    assert await ask_order(harness, stranger, order_number="1001") == NOT_VERIFIED
    assert (await ask_order(harness, shop, order_number="1001"))["orders"][0]["order_number"] == "1001"
    bob = await place_call(harness, shopify_credentials(stores.shopify_url))
    (order,) = (await ask_order(harness, bob, order_number="1002", postcode="10001"))["orders"]
    assert order["status"] == "unfulfilled"


async def test_shopify_session_phone_matches_in_another_format(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(
        harness, shopify_credentials(stores.shopify_url), customer=CustomerInfo(phone="+1 (415) 555-0100")
    )
    (order,) = (await ask_order(harness, conversation_id, order_number="#1001"))["orders"]
    assert order["order_number"] == "1001"


# ---- Shopify's cost throttle --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "asked", "answer"),
    [
        ("ecommerce/products", {"query": "blue m"}, {"products": [{"name": "Blue Mug"}]}),  # not cached
        (
            "ecommerce/orders",
            {"order_number": "1001", "postcode": "94103"},
            {"orders": [{"order_number": "1001"}]},
        ),
    ],
)
async def test_shopify_throttled_waits_for_the_bucket_when_it_fits(
    harness: Harness,
    stores: Stores,
    tool: str,
    asked: dict[str, str],
    answer: dict[str, list[dict[str, str]]],
) -> None:
    """Empty bucket, 10-point query, 50 points/s: 0.2 s to wait, inside the 1.5 s budget."""
    conversation_id = await place_call(harness, shopify_credentials(stores.shopify_url))
    stores.shopify.set_bucket(available=0, restore_rate=50)
    response = await harness.tool(tool, {"conversation_id": conversation_id, **asked})
    body = response.json()
    assert "error" not in body
    ((key, (expected,)),) = answer.items()
    (found,) = body[key]
    assert {k: found[k] for k in expected} == expected
    assert len(stores.shopify.requests) == 2


@pytest.mark.parametrize(
    ("available", "maximum", "restore_rate"),
    [
        (0, 1000, 1),  # 10 points at 1 point/s: 10 s, far beyond the budget
        (8, 1000, 1),  # 2 s for the 2 missing points: still beyond the 1.5 s budget
        (0, 5, 50),  # a 10-point query never fits a 5-point bucket
    ],
)
async def test_shopify_throttled_beyond_the_budget_is_busy_at_once(
    harness: Harness, stores: Stores, available: float, maximum: float, restore_rate: float
) -> None:
    conversation_id = await place_call(harness, shopify_credentials(stores.shopify_url))
    stores.shopify.set_bucket(available=available, maximum=maximum, restore_rate=restore_rate)
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": uuid.uuid4().hex[:8]}
    )
    # "rate_limited", not "timeout": nothing was waited for (a wait would run out the budget).
    assert response.json() == {
        "products": [],
        "count": 0,
        "message": "The store is busy right now. Please try again in a moment.",
        "error": "rate_limited",
    }
    assert len(stores.shopify.requests) == 1


# ---- WooCommerce behind a host that strips the Authorization header ------------------------------


async def test_keys_never_go_in_the_query_string_over_http(harness: Harness, stores: Stores) -> None:
    conversation_id = await place_call(harness, woo_credentials(stores.woo_url))
    stores.woo.strips_authorization = True
    response = await harness.tool(
        "ecommerce/products", {"conversation_id": conversation_id, "query": uuid.uuid4().hex[:8]}
    )
    assert response.json()["error"] == "unauthorized"
    assert len(stores.woo.requests) == 1
    assert "consumer_secret" not in stores.woo.requests[0]["query"]


@dataclass
class HttpsWoo:
    url: str
    state: StoreState
    client: StoreClient

    def credentials(self, secret: str = WOO_SECRET) -> StoreCredentials:
        return StoreCredentials("woocommerce", self.url, WOO_KEY, api_secret=secret)


@pytest.fixture(scope="module")
def _https_woo_server() -> Iterator[tuple[str, StoreState, bytes]]:
    pki = make_pki("localhost")
    state = StoreState()
    with leaf_files(pki, "localhost") as tls, serve(woo_app(state), tls=tls, name="localhost") as url:
        yield url, state, pki.ca_pem


@pytest.fixture
async def https_woo(_https_woo_server: tuple[str, StoreState, bytes]) -> AsyncIterator[HttpsWoo]:
    """The WooCommerce stand-in over real TLS, and a store client that trusts its CA only."""
    url, state, ca_pem = _https_woo_server
    state.reset()
    trust = ssl.create_default_context(cadata=ca_pem.decode())
    async with httpx.AsyncClient(verify=trust, follow_redirects=False, trust_env=False) as http:
        outbound = OutboundClient(
            http,
            allow_http=False,
            allow_hosts=frozenset({urlsplit(url).netloc}),
            max_response_bytes=2 * 1024 * 1024,
        )
        yield HttpsWoo(url, state, StoreClient(outbound, shopify_api_version="2025-01"))


def deadline() -> float:
    return asyncio.get_running_loop().time() + 5


async def test_stripped_authorization_falls_back_to_query_keys_over_https(
    https_woo: HttpsWoo, caplog: pytest.LogCaptureFixture
) -> None:
    https_woo.state.strips_authorization = True
    with caplog.at_level(logging.INFO, logger="httpx"):
        products = await https_woo.client.products(https_woo.credentials(), "tea", 3, deadline())
        orders = await https_woo.client.orders(
            https_woo.credentials(), None, "jane@example.com", 3, deadline()
        )
    assert [p.name for p in products] == ["Jasmine Tea"]
    assert [o.order_number for o in orders] == ["1001"]
    first, second, third = https_woo.state.requests
    assert first["headers"]["authorization"].startswith("Basic ")  # sent, then dropped by the host
    assert "consumer_key" not in first["query"]
    assert second["query"]["consumer_key"] == WOO_KEY and second["query"]["consumer_secret"] == WOO_SECRET
    assert "authorization" not in second["headers"]
    # Remembered for the store: the next lookup goes straight to the query keys.
    assert third["query"]["consumer_key"] == WOO_KEY and "authorization" not in third["headers"]
    # Other suites' background work in this process logs httpx lines too: keep this store's own.
    # (the guard pins the resolved address, so a line names the store by its port).
    store_port = f":{urlsplit(https_woo.url).port}/"
    logged = [r.getMessage() for r in caplog.records if r.name == "httpx" and store_port in r.getMessage()]
    assert len(logged) == 3
    for secret in (WOO_KEY, WOO_SECRET, "jane@example.com", "jane%40example.com"):
        assert not any(secret in line for line in logged)


async def test_wrong_keys_over_https_are_not_retried_in_the_query_string(https_woo: HttpsWoo) -> None:
    """A wrong secret is `woocommerce_rest_authentication_error`, not a stripped header."""
    with pytest.raises(StoreError) as failed:
        await https_woo.client.products(https_woo.credentials(secret="cs_wrong"), "tea", 3, deadline())
    assert (failed.value.code, failed.value.store_code) == (
        "unauthorized",
        "woocommerce_rest_authentication_error",
    )
    (only,) = https_woo.state.requests
    assert "consumer_secret" not in only["query"]


async def test_stripped_header_and_wrong_keys_is_unauthorized_after_one_fallback(https_woo: HttpsWoo) -> None:
    https_woo.state.strips_authorization = True
    with pytest.raises(StoreError) as failed:
        await https_woo.client.products(https_woo.credentials(secret="cs_wrong"), "tea", 3, deadline())
    assert failed.value.code == "unauthorized"
    assert len(https_woo.state.requests) == 2
