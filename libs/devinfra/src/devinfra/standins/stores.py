"""Local stand-ins for a WooCommerce store (REST v3) and a Shopify store (Admin GraphQL), plus a
canary listener that must never be contacted. They follow the documented request/response shapes,
reject wrong credentials, and can be switched into failure modes by the tests.

Quirks of real shops they keep:
- WooCommerce answers 401 `woocommerce_rest_authentication_error` to wrong keys, and 401
  `woocommerce_rest_cannot_view` to a request that reached it without credentials — what a host that
  strips the Authorization header (`StoreState.strips_authorization`) turns valid keys into. Keys as
  `consumer_key`/`consumer_secret` query parameters count over https only, as in WooCommerce.
- WooCommerce order numbers are not ids (sequential-numbering plugins): `GET orders/<id>` takes the
  id, and `search=` matches the number as well as ids, e-mails, phones, postcodes and item names.
- Shopify's GraphQL cost bucket (`StoreState.bucket_*`): a query costing more than the bucket holds
  gets HTTP 200 with `errors[].extensions.code == "THROTTLED"` and the bucket in
  `extensions.cost.throttleStatus`; it refills continuously at `restore_rate` points per second.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from devinfra.broker import free_port

WOO_KEY, WOO_SECRET = "ck_test_key", "cs_test_secret"
SHOPIFY_TOKEN = "shpat_test_token"  # noqa: S105 - the stand-in store's test credential


@dataclass
class StoreState:
    """Shared between the server thread and the tests (simple assignments; the GIL suffices)."""

    mode: str = "ok"  # ok | unauthorized | not_found | rate_limited | rate_limited_once | slow | redirect
    retry_after: str = "1"
    slow_s: float = 5.0
    redirect_to: str = ""
    # WooCommerce behind a host that drops the Authorization header before PHP sees it.
    strips_authorization: bool = False
    # Shopify's GraphQL cost bucket (points; points per second) and what one query costs.
    bucket_max: float = 1000.0
    bucket_available: float = 1000.0
    restore_rate: float = 50.0
    query_cost: int = 10
    bucket_at: float = field(default_factory=time.monotonic)
    pending_bucket: tuple[float, float, float] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    # WooCommerce keys accepted besides WOO_KEY/WOO_SECRET (key -> secret), e.g. a test's canaries.
    woo_keys: dict[str, str] = field(default_factory=dict)

    def reset(self) -> None:
        self.mode, self.retry_after, self.redirect_to = "ok", "1", ""
        self.strips_authorization = False
        self.set_bucket(available=1000.0, maximum=1000.0, restore_rate=50.0)
        self.query_cost = 10
        self.requests.clear()

    def set_bucket(self, *, available: float, maximum: float = 1000.0, restore_rate: float = 50.0) -> None:
        """The bucket as the NEXT query finds it (so a test does not depend on how long it takes to
        send that query); from then on it refills with time."""
        self.pending_bucket = (available, maximum, restore_rate)

    def take_from_bucket(self, cost: int) -> bool:
        """Refill by the time passed, then take `cost` points if the bucket holds them."""
        now = time.monotonic()
        if self.pending_bucket is not None:
            self.bucket_available, self.bucket_max, self.restore_rate = self.pending_bucket
            self.pending_bucket, self.bucket_at = None, now
        self.bucket_available = min(
            self.bucket_max, self.bucket_available + (now - self.bucket_at) * self.restore_rate
        )
        self.bucket_at = now
        if self.bucket_available < cost:
            return False
        self.bucket_available -= cost
        return True

    def throttle_status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.bucket_max,
            "currentlyAvailable": round(self.bucket_available, 1),
            "restoreRate": self.restore_rate,
        }


PRODUCTS: list[dict[str, Any]] = [
    {
        "id": 11,
        "name": "Blue Mug",
        "price": "12.50",
        "stock_status": "instock",
        "stock_quantity": 7,
        "status": "publish",
    },
    {
        "id": 12,
        "name": "Red Mug",
        "price": "10.00",
        "stock_status": "outofstock",
        "stock_quantity": 0,
        "status": "publish",
    },
    {
        "id": 13,
        "name": "Green Mug",
        "price": "11.00",
        "stock_status": "instock",
        "stock_quantity": 2,
        "status": "publish",
    },
    {
        "id": 14,
        "name": "Mug Rack",
        "price": "30.00",
        "stock_status": "instock",
        "stock_quantity": None,
        "status": "publish",
    },
    {
        "id": 15,
        "name": "Secret Mug",
        "price": "99.00",
        "stock_status": "instock",
        "stock_quantity": 1,
        "status": "draft",
    },
    {
        "id": 16,
        "name": "Jasmine Tea",
        "price": "8.90",
        "stock_status": "instock",
        "stock_quantity": 40,
        "status": "publish",
    },
]

# Sequential numbering: order numbers are not the internal ids. The order with id 1001 is #1046,
# and #1001 is id 1187; order #1050's billing postcode and phone contain "1001" (search finds it).
WOO_ORDERS: list[dict[str, Any]] = [
    {
        "id": 1187,
        "number": "1001",
        "status": "processing",
        "currency": "EUR",
        "total": "45.00",
        "billing": {
            "first_name": "Jane",
            "email": "Jane@Example.com",
            "phone": "(415) 555-0100",
            "postcode": "SW1A 1AA",
            "country": "GB",
        },
        "line_items": [{"name": "Blue Mug", "quantity": 2}, {"name": "Jasmine Tea", "quantity": 1}],
        "meta_data": [
            {
                "id": 1,
                "key": "_wc_shipment_tracking_items",
                "value": [
                    {"tracking_provider": "UPS", "tracking_number": "1Z999", "custom_tracking_link": ""}
                ],
            }
        ],
    },
    {
        "id": 1188,
        "number": "1002",
        "status": "completed",
        "currency": "EUR",
        "total": "10.00",
        "billing": {"email": "bob@example.com", "phone": "", "postcode": "75001", "country": "FR"},
        "line_items": [{"name": "Red Mug", "quantity": 1}],
        "meta_data": [],
    },
    {
        "id": 1001,
        "number": "1046",
        "status": "on-hold",
        "currency": "EUR",
        "total": "99.00",
        "billing": {"email": "carol@example.com", "phone": "", "postcode": "10115", "country": "DE"},
        "line_items": [{"name": "Secret Mug", "quantity": 1}],
        "meta_data": [],
    },
    {
        "id": 1190,
        "number": "1050",
        "status": "processing",
        "currency": "USD",
        "total": "30.00",
        "billing": {
            "email": "dan@example.com",
            "phone": "212-555-1001",
            "postcode": "10010",
            "country": "US",
        },
        "line_items": [{"name": "Mug Rack", "quantity": 1}],
        "meta_data": [],
    },
]

SHOPIFY_ORDERS: list[dict[str, Any]] = [
    {
        "name": "#1001",
        "email": "jane@example.com",
        "phone": "+14155550100",
        "billingAddress": {"zip": "94103", "phone": "+1 415-555-0100"},
        "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "FULFILLED",
        "totalPriceSet": {"shopMoney": {"amount": "45.0", "currencyCode": "USD"}},
        "lineItems": {"edges": [{"node": {"name": "Blue Mug", "quantity": 2}}]},
        "fulfillments": [
            {"trackingInfo": [{"company": "UPS", "number": "1Z111", "url": "https://ups.example/1Z111"}]}
        ],
    },
    {
        "name": "#1002",
        "email": "bob@example.com",
        "phone": None,
        "billingAddress": {"zip": "10001", "phone": None},
        "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "UNFULFILLED",
        "totalPriceSet": {"shopMoney": {"amount": "10.0", "currencyCode": "USD"}},
        "lineItems": {"edges": [{"node": {"name": "Red Mug", "quantity": 1}}]},
        "fulfillments": [],
    },
]


def _woo_search_matches(order: dict[str, Any], term: str) -> bool:
    """WooCommerce's order search: the number (sequential-numbering plugins register it), the id,
    billing e-mail, phone, postcode and names, and the items' names — substrings, any case."""
    billing = order["billing"]
    fields = [
        order["number"],
        str(order["id"]),
        *(str(billing.get(k) or "") for k in ("email", "phone", "postcode", "first_name")),
        *(item["name"] for item in order["line_items"]),
    ]
    return any(term in f.lower() for f in fields)


async def _apply_mode(state: StoreState, request: Request, unauthorized: Response) -> Response | None:
    state.requests.append(
        {"path": request.url.path, "query": dict(request.query_params), "headers": dict(request.headers)}
    )
    if state.mode == "unauthorized":
        return unauthorized
    if state.mode == "not_found":
        return JSONResponse(
            {"code": "rest_no_route", "message": "No route was found.", "data": {"status": 404}}, 404
        )
    if state.mode == "rate_limited" or (state.mode == "rate_limited_once" and len(state.requests) == 1):
        return JSONResponse(
            {"errors": "Exceeded 2 calls per second"}, 429, headers={"Retry-After": state.retry_after}
        )
    if state.mode == "slow":
        await asyncio.sleep(state.slow_s)  # simulates a store slower than the budget
    if state.mode == "redirect":
        return Response(status_code=302, headers={"Location": state.redirect_to})
    if state.mode == "huge":  # 3 MB of valid JSON, streamed without a Content-Length
        chunk = b'{"name": "' + b"x" * 1000 + b'"},'

        async def body() -> Any:
            yield b"["
            for _ in range(3000):
                yield chunk
            yield b"{}]"

        return StreamingResponse(body(), media_type="application/json")
    return None


def woo_app(state: StoreState) -> FastAPI:
    app = FastAPI()
    cannot_view = JSONResponse(
        {
            "code": "woocommerce_rest_cannot_view",
            "message": "Sorry, you cannot list resources.",
            "data": {"status": 401},
        },
        401,
    )

    def invalid(what: str) -> JSONResponse:
        return JSONResponse(
            {
                "code": "woocommerce_rest_authentication_error",
                "message": f"Consumer {what} is invalid.",
                "data": {"status": 401},
            },
            401,
        )

    def refused(request: Request) -> Response | None:
        """None when authenticated (as WC_REST_Authentication::perform_basic_authentication)."""
        key = secret = None
        header = "" if state.strips_authorization else request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                key, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return cannot_view
        elif request.url.scheme == "https":  # query-string keys are read over SSL only
            key = request.query_params.get("consumer_key")
            secret = request.query_params.get("consumer_secret")
        if not key or not secret:
            return cannot_view  # nobody logged in: the permission check refuses
        expected = WOO_SECRET if key == WOO_KEY else state.woo_keys.get(key)
        if expected is None:
            return invalid("key")
        if secret != expected:
            return invalid("secret")
        return None

    def page(items: list[dict[str, Any]], per_page: int) -> JSONResponse:
        total = len(items)
        return JSONResponse(
            items[:per_page],
            headers={"X-WP-Total": str(total), "X-WP-TotalPages": str(max(1, -(-total // per_page)))},
        )

    @app.get("/wp-json/wc/v3/products")
    async def products(request: Request) -> Response:
        if (early := await _apply_mode(state, request, cannot_view)) is not None:
            return early
        if (denied := refused(request)) is not None:
            return denied
        search = request.query_params.get("search", "").lower()
        status = request.query_params.get("status", "any")
        per_page = int(request.query_params.get("per_page", "10"))
        found = [
            p for p in PRODUCTS if search in p["name"].lower() and (status == "any" or p["status"] == status)
        ]
        return page(found, per_page)

    @app.get("/wp-json/wc/v3/orders")
    async def orders(request: Request) -> Response:
        if (early := await _apply_mode(state, request, cannot_view)) is not None:
            return early
        if (denied := refused(request)) is not None:
            return denied
        search = request.query_params.get("search", "").lower()
        found = [o for o in WOO_ORDERS if _woo_search_matches(o, search)]
        return page(found, int(request.query_params.get("per_page", "10")))

    @app.get("/wp-json/wc/v3/orders/{order_id}")
    async def order(order_id: str, request: Request) -> Response:
        if (early := await _apply_mode(state, request, cannot_view)) is not None:
            return early
        if (denied := refused(request)) is not None:
            return denied
        for o in WOO_ORDERS:
            if str(o["id"]) == order_id:
                return JSONResponse(o)
        return JSONResponse(
            {
                "code": "woocommerce_rest_shop_order_invalid_id",
                "message": "Invalid ID.",
                "data": {"status": 404},
            },
            404,
        )

    return app


def _shopify_product(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": p["name"],
        "totalInventory": p["stock_quantity"] or 0,
        "tracksInventory": True,
        "priceRangeV2": {"minVariantPrice": {"amount": p["price"], "currencyCode": "USD"}},
        "variants": {
            "edges": [{"node": {"price": p["price"], "availableForSale": p["stock_status"] == "instock"}}]
        },
    }


def shopify_app(state: StoreState) -> FastAPI:
    app = FastAPI()
    invalid = JSONResponse(
        {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}, 401
    )

    @app.post("/admin/api/2025-01/graphql.json")
    async def graphql(request: Request) -> Response:
        if (early := await _apply_mode(state, request, invalid)) is not None:
            return early
        if request.headers.get("x-shopify-access-token") != SHOPIFY_TOKEN:
            return invalid
        payload = await request.json()
        state.requests[-1]["graphql"] = payload
        if not state.take_from_bucket(state.query_cost):
            return JSONResponse(
                {
                    "errors": [
                        {
                            "message": "Throttled",
                            "extensions": {
                                "code": "THROTTLED",
                                "documentation": "https://shopify.dev/api/usage/rate-limits",
                            },
                        }
                    ],
                    "extensions": {
                        "cost": {
                            "requestedQueryCost": state.query_cost,
                            "actualQueryCost": None,
                            "throttleStatus": state.throttle_status(),
                        }
                    },
                }
            )
        cost = {
            "requestedQueryCost": state.query_cost,
            "actualQueryCost": state.query_cost,
            "throttleStatus": state.throttle_status(),
        }
        query, variables = payload.get("query", ""), payload.get("variables") or {}
        first = int(variables.get("first", 10))
        search = str(variables.get("query", ""))
        if "products(" in query:
            terms = [t.lower() for t in re.findall(r"title:\*([^*]*)\*", search)]
            found = [
                p for p in PRODUCTS if p["status"] == "publish" and all(t in p["name"].lower() for t in terms)
            ]
            edges = [{"node": _shopify_product(p)} for p in found[:first]]
            return JSONResponse({"data": {"products": {"edges": edges}}, "extensions": {"cost": cost}})
        if "orders(" in query:
            name = re.search(r"name:(#?\w+)", search)
            email = re.search(r'email:"?([^"\s]+)"?', search)
            found = [
                o
                for o in SHOPIFY_ORDERS
                if (name is None or o["name"] == name.group(1))
                and (email is None or o["email"].lower() == email.group(1).lower())
            ]
            edges = [{"node": o} for o in found[:first]]
            return JSONResponse({"data": {"orders": {"edges": edges}}, "extensions": {"cost": cost}})
        return JSONResponse({"errors": [{"message": "unsupported query"}]})

    return app


@contextmanager
def serve(app: FastAPI, *, tls: tuple[Path, Path] | None = None, name: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` on 127.0.0.1; its URL names it `name`. `tls`: (certificate, key) PEM files → https."""
    host, port = "127.0.0.1", free_port()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("stand-in did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if tls else 'http'}://{name}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


class Canary:
    """A TCP listener on 127.0.0.1 that counts every connection made to it (there must be none)."""

    def __init__(self) -> None:
        canary = self
        self.connections = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                # Runs in the accept loop, in accept order: counted before the next accept.
                canary.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Canary:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
