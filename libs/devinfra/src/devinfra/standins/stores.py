"""Local stand-ins for a WooCommerce store (REST v3) and a Shopify store (Admin GraphQL), plus a
canary listener that must never be contacted. They follow the documented request/response shapes,
reject wrong credentials, and can be switched into failure modes by the tests."""

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
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from elevenlabs_sim.testing import free_port

WOO_KEY, WOO_SECRET = "ck_test_key", "cs_test_secret"
SHOPIFY_TOKEN = "shpat_test_token"  # noqa: S105 - the stand-in store's test credential


@dataclass
class StoreState:
    """Shared between the server thread and the tests (simple assignments; the GIL suffices)."""

    mode: str = "ok"  # ok | unauthorized | not_found | rate_limited | rate_limited_once | slow | redirect
    retry_after: str = "1"
    slow_s: float = 5.0
    redirect_to: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.mode, self.retry_after, self.redirect_to = "ok", "1", ""
        self.requests.clear()


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

WOO_ORDERS: list[dict[str, Any]] = [
    {
        "id": 1001,
        "number": "1001",
        "status": "processing",
        "currency": "EUR",
        "total": "45.00",
        "billing": {"email": "jane@example.com", "first_name": "Jane"},
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
        "id": 1002,
        "number": "1002",
        "status": "completed",
        "currency": "EUR",
        "total": "10.00",
        "billing": {"email": "bob@example.com"},
        "line_items": [{"name": "Red Mug", "quantity": 1}],
        "meta_data": [],
    },
]

SHOPIFY_ORDERS: list[dict[str, Any]] = [
    {
        "name": "#1001",
        "email": "jane@example.com",
        "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "FULFILLED",
        "totalPriceSet": {"shopMoney": {"amount": "45.0", "currencyCode": "USD"}},
        "lineItems": {"edges": [{"node": {"name": "Blue Mug", "quantity": 2}}]},
        "fulfillments": [
            {"trackingInfo": [{"company": "UPS", "number": "1Z111", "url": "https://ups.example/1Z111"}]}
        ],
    }
]


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

    def authorized(request: Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()
        return request.headers.get("authorization") == expected

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
        if not authorized(request):
            return cannot_view
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
        if not authorized(request):
            return cannot_view
        search = request.query_params.get("search", "").lower()
        found = [o for o in WOO_ORDERS if search in o["number"] or search in o["billing"]["email"]]
        return page(found, int(request.query_params.get("per_page", "10")))

    @app.get("/wp-json/wc/v3/orders/{order_id}")
    async def order(order_id: str, request: Request) -> Response:
        if (early := await _apply_mode(state, request, cannot_view)) is not None:
            return early
        if not authorized(request):
            return cannot_view
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
        query, variables = payload.get("query", ""), payload.get("variables") or {}
        first = int(variables.get("first", 10))
        search = str(variables.get("query", ""))
        if "products(" in query:
            terms = [t.lower() for t in re.findall(r"title:\*([^*]*)\*", search)]
            found = [
                p for p in PRODUCTS if p["status"] == "publish" and all(t in p["name"].lower() for t in terms)
            ]
            edges = [{"node": _shopify_product(p)} for p in found[:first]]
            return JSONResponse({"data": {"products": {"edges": edges}}, "extensions": {"cost": {}}})
        if "orders(" in query:
            name = re.search(r"name:(#?\w+)", search)
            email = re.search(r'email:"?([^"\s]+)"?', search)
            found = [
                o
                for o in SHOPIFY_ORDERS
                if (name is None or o["name"] == name.group(1))
                and (email is None or o["email"] == email.group(1))
            ]
            return JSONResponse({"data": {"orders": {"edges": [{"node": o} for o in found[:first]]}}})
        return JSONResponse({"errors": [{"message": "unsupported query"}]})

    return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    host, port = "127.0.0.1", free_port()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("stand-in did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
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
