"""Store adapters: WooCommerce REST v3 and the Shopify Admin GraphQL API, through `OutboundClient`.

Every request runs against one deadline (event-loop time) shared by the whole tool answer; a 429 is
retried only when its Retry-After still fits that deadline. Store answers are reduced to the few
fields a voice agent reads out; nothing else (and never the credentials) leaves this module.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from cachetools import TTLCache

from bus.outbound import OutboundClient, OutboundFailed, OutboundRefused, OutboundResponse

Platform = Literal["woocommerce", "shopify"]
JSON = dict[str, Any]

MAX_429_RETRIES = 2
MAX_THROTTLED_RETRIES = 2
DEFAULT_RETRY_AFTER_S = 0.5
# A retry is only worth making when it (plus the time to answer) still fits the deadline.
ANSWER_MARGIN_S = 0.3
# WooCommerce's order search also matches addresses, phones and item names: one page of candidates,
# of which only exact `number` matches are kept.
WOO_ORDER_SEARCH_PAGE = 20
# The 401 WooCommerce gives a request that reached it without (readable) credentials.
WOO_CANNOT_VIEW = "woocommerce_rest_cannot_view"
_EMAIL = re.compile(r"^[^@\s\"'\\:()]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_SEARCH_UNSAFE = re.compile(r"[^\w\s.-]", re.UNICODE)
_ORDER_WORD = re.compile(r"^\s*order\b", re.IGNORECASE)


class StoreError(Exception):
    """The store could not answer. `code`: unauthorized, not_found, rate_limited, timeout,
    unreachable, redirect, too_large, refused, store_error; `store_code`: the store's own error
    code when it gave one (WooCommerce's `code`, e.g. ``woocommerce_rest_cannot_view``)."""

    def __init__(self, code: str, detail: str = "", store_code: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.store_code = store_code


@dataclass(frozen=True)
class StoreCredentials:
    platform: Platform
    base_url: str
    api_key: str
    api_secret: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)

    def cache_identity(self) -> str:
        """Which store (not which secret): the platform and base URL."""
        return f"{self.platform}|{self.base_url.rstrip('/').lower()}"


def parse_credentials(platform: str | None, clear: str) -> StoreCredentials | None:
    """The decrypted credentials JSON (api-v1 §9) → credentials, or None when unusable."""
    try:
        value = json.loads(clear)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    kind = platform or value.get("platform")
    base_url, api_key = value.get("base_url"), value.get("api_key")
    if kind not in ("woocommerce", "shopify") or not isinstance(base_url, str) or not base_url:
        return None
    api_key = api_key if isinstance(api_key, str) else ""
    if kind == "woocommerce":
        secret = value.get("api_secret")
        if not api_key or not isinstance(secret, str) or not secret:
            return None
        return StoreCredentials("woocommerce", base_url, api_key, api_secret=secret)
    token = value.get("access_token")
    if not isinstance(token, str) or not token:
        return None
    return StoreCredentials("shopify", base_url, api_key, access_token=token)


@dataclass(frozen=True)
class Product:
    name: str
    price: str | None
    currency: str | None
    in_stock: bool
    stock_quantity: int | None

    def as_json(self) -> JSON:
        return {
            "name": self.name,
            "price": self.price,
            "currency": self.currency,
            "in_stock": self.in_stock,
            "stock_quantity": self.stock_quantity,
        }


@dataclass(frozen=True)
class Order:
    """An order as read out; the billing contact only checks who may hear it (never in `as_json`)."""

    order_number: str
    status: str
    items: list[tuple[str, int]]
    total: str | None
    currency: str | None
    tracking: list[JSON]
    billing_email: str | None = field(default=None, repr=False)
    billing_phone: str | None = field(default=None, repr=False)
    billing_postcode: str | None = field(default=None, repr=False)

    def as_json(self) -> JSON:
        return {
            "order_number": self.order_number,
            "status": self.status,
            "items": [{"name": n, "quantity": q} for n, q in self.items],
            "total": self.total,
            "currency": self.currency,
            "tracking": self.tracking,
        }


def valid_email(value: str) -> bool:
    return bool(_EMAIL.match(value))


def search_terms(query: str) -> str:
    """Free text → words only (no search-syntax operators, quotes or wildcards)."""
    return " ".join(_SEARCH_UNSAFE.sub(" ", query).split())[:100]


def order_name(order_number: str) -> str:
    """What a caller says (``#1001``, ``order 1001``) → the number as stores write it (``1001``)."""
    return re.sub(r"[^A-Za-z0-9-]", "", _ORDER_WORD.sub("", order_number))[:40]


def same_order_number(store_number: Any, wanted: str) -> bool:
    """Exact (case-insensitive) match of a store's order number, ignoring a leading ``#``."""
    number = _str(store_number)
    return number is not None and order_name(number).lower() == wanted.lower()


def throttle_wait_s(extensions: Any) -> float | None:
    """Seconds until Shopify's cost bucket holds the throttled query's cost, or None when it never will.

    From the GraphQL `extensions.cost`: ``requestedQueryCost`` and ``throttleStatus {maximumAvailable,
    currentlyAvailable, restoreRate}`` (points, points/second; shopify.dev "GraphQL Admin API rate
    limits"): the bucket refills continuously at `restoreRate` up to `maximumAvailable`.
    """
    cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
    status = cost.get("throttleStatus") if isinstance(cost, Mapping) else None
    if not isinstance(cost, Mapping) or not isinstance(status, Mapping):
        return None
    numbers = [
        _number(cost.get("requestedQueryCost")),
        _number(status.get("maximumAvailable")),
        _number(status.get("currentlyAvailable")),
        _number(status.get("restoreRate")),
    ]
    if None in numbers:
        return None
    requested, maximum, available, rate = cast(list[float], numbers)
    if rate <= 0 or requested > maximum:
        return None
    return max(requested - available, 0.0) / rate


# ---- pure parsing -------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value != "":
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _human(status: str | None) -> str:
    return (status or "unknown").replace("_", " ").replace("-", " ").lower()


def woo_product(item: Mapping[str, Any]) -> Product:
    return Product(
        name=_str(item.get("name")) or "Unnamed product",
        price=_str(item.get("price")),
        currency=None,  # a store-level setting in WooCommerce, not part of the product
        in_stock=item.get("stock_status") == "instock",
        stock_quantity=_int(item.get("stock_quantity")),
    )


def woo_order(item: Mapping[str, Any]) -> Order:
    items = [
        (_str(li.get("name")) or "item", _int(li.get("quantity")) or 0)
        for li in item.get("line_items") or []
        if isinstance(li, Mapping)
    ]
    tracking: list[JSON] = []
    for meta in item.get("meta_data") or []:
        # WooCommerce Shipment Tracking stores its entries in this meta key.
        if isinstance(meta, Mapping) and meta.get("key") == "_wc_shipment_tracking_items":
            for entry in meta.get("value") or []:
                if isinstance(entry, Mapping):
                    tracking.append(
                        {
                            "carrier": _str(entry.get("tracking_provider")),
                            "number": _str(entry.get("tracking_number")),
                            "url": _str(entry.get("custom_tracking_link")),
                        }
                    )
    billing = _mapping(item.get("billing"))
    return Order(
        order_number=_str(item.get("number")) or _str(item.get("id")) or "?",
        status=_human(_str(item.get("status"))),
        items=items,
        total=_str(item.get("total")),
        currency=_str(item.get("currency")),
        tracking=tracking,
        billing_email=_str(billing.get("email")),
        billing_phone=_str(billing.get("phone")),
        billing_postcode=_str(billing.get("postcode")),
    )


def _nodes(connection: Any) -> list[Mapping[str, Any]]:
    if not isinstance(connection, Mapping):
        return []
    if isinstance(connection.get("nodes"), list):
        return [n for n in connection["nodes"] if isinstance(n, Mapping)]
    return [
        e["node"]
        for e in connection.get("edges") or []
        if isinstance(e, Mapping) and isinstance(e.get("node"), Mapping)
    ]


def shopify_product(node: Mapping[str, Any]) -> Product:
    variants = _nodes(node.get("variants"))
    price_range = node.get("priceRangeV2") if isinstance(node.get("priceRangeV2"), Mapping) else {}
    minimum = price_range.get("minVariantPrice") if isinstance(price_range, Mapping) else None
    minimum = minimum if isinstance(minimum, Mapping) else {}
    price = _str(minimum.get("amount")) or (_str(variants[0].get("price")) if variants else None)
    total = _int(node.get("totalInventory"))
    if total is not None and node.get("tracksInventory", True) is not False:
        in_stock = total > 0
    else:
        in_stock = any(v.get("availableForSale") is True for v in variants)
    return Product(
        name=_str(node.get("title")) or "Unnamed product",
        price=price,
        currency=_str(minimum.get("currencyCode")),
        in_stock=in_stock,
        stock_quantity=total,
    )


def shopify_order(node: Mapping[str, Any]) -> Order:
    money = node.get("totalPriceSet")
    shop = money.get("shopMoney") if isinstance(money, Mapping) else None
    shop = shop if isinstance(shop, Mapping) else {}
    tracking: list[JSON] = []
    fulfillments = node.get("fulfillments")
    for fulfillment in fulfillments if isinstance(fulfillments, list) else []:
        if not isinstance(fulfillment, Mapping):
            continue
        for info in fulfillment.get("trackingInfo") or []:
            if isinstance(info, Mapping):
                tracking.append(
                    {
                        "carrier": _str(info.get("company")),
                        "number": _str(info.get("number")),
                        "url": _str(info.get("url")),
                    }
                )
    billing = _mapping(node.get("billingAddress"))
    return Order(
        order_number=(_str(node.get("name")) or "?").lstrip("#"),
        status=_human(_str(node.get("displayFulfillmentStatus"))),
        items=[
            (_str(li.get("name")) or "item", _int(li.get("quantity")) or 0)
            for li in _nodes(node.get("lineItems"))
        ],
        total=_str(shop.get("amount")),
        currency=_str(shop.get("currencyCode")),
        tracking=tracking,
        billing_email=_str(node.get("email")),
        billing_phone=_str(billing.get("phone")) or _str(node.get("phone")),
        billing_postcode=_str(billing.get("zip")),
    )


SHOPIFY_PRODUCTS_QUERY = """
query SwitchboardProducts($first: Int!, $query: String!) {
  products(first: $first, query: $query) {
    edges { node {
      title
      totalInventory
      tracksInventory
      priceRangeV2 { minVariantPrice { amount currencyCode } }
      variants(first: 1) { edges { node { price availableForSale } } }
    } }
  }
}
""".strip()

SHOPIFY_ORDERS_QUERY = """
query SwitchboardOrders($first: Int!, $query: String!) {
  orders(first: $first, query: $query, sortKey: PROCESSED_AT, reverse: true) {
    edges { node {
      name
      email
      phone
      billingAddress { zip phone }
      displayFinancialStatus
      displayFulfillmentStatus
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 20) { edges { node { name quantity } } }
      fulfillments(first: 5) { trackingInfo(first: 5) { company number url } }
    } }
  }
}
""".strip()


def retry_after_s(value: str | None, now_unix: float) -> float | None:
    """Retry-After as seconds (delta or HTTP date), or None when absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now_unix, 0.0)
    except (TypeError, ValueError):
        return None


# ---- I/O ----------------------------------------------------------------------------------------


class StoreClient:
    def __init__(self, outbound: OutboundClient, *, shopify_api_version: str) -> None:
        self._outbound = outbound
        self._shopify_version = shopify_api_version
        # WooCommerce stores (cache_identity) whose host strips the Authorization header: their keys
        # go in the query string straight away instead of after a wasted 401.
        self._query_auth: TTLCache[str, bool] = TTLCache(maxsize=1024, ttl=3600)

    async def _send(self, method: str, url: str, *, deadline: float, **kwargs: Any) -> Any:
        """One logical request: 429s retried within the deadline; the decoded JSON on 2xx."""
        loop = asyncio.get_running_loop()
        for attempt in range(MAX_429_RETRIES + 1):
            try:
                response = await self._outbound.request(method, url, deadline=deadline, **kwargs)
            except OutboundRefused as exc:
                raise StoreError("refused", exc.reason) from exc
            except OutboundFailed as exc:
                raise StoreError(exc.code, exc.detail) from exc
            if response.status_code == 429:
                wait = retry_after_s(response.headers.get("retry-after"), time.time())
                wait = DEFAULT_RETRY_AFTER_S if wait is None else wait
                if attempt < MAX_429_RETRIES and loop.time() + wait + ANSWER_MARGIN_S < deadline:
                    await asyncio.sleep(wait)  # the store asked us to wait
                    continue
                raise StoreError("rate_limited", "store rate limit")
            return _decode(response)
        raise StoreError("rate_limited", "store rate limit")

    # ---- WooCommerce ---------------------------------------------------------------------------

    def _woo_url(self, creds: StoreCredentials, path: str) -> str:
        return f"{creds.base_url.rstrip('/')}/wp-json/wc/v3/{path}"

    async def _woo_get(
        self, creds: StoreCredentials, path: str, params: Mapping[str, str | int], deadline: float
    ) -> Any:
        """GET with the consumer key/secret: HTTP Basic (the documented method over HTTPS), else —
        once, over https only — as `consumer_key`/`consumer_secret` query parameters.

        Hosts that strip the Authorization header (CGI/FastCGI PHP, some proxies) make a request
        with valid keys reach WooCommerce unauthenticated: it answers 401 `woocommerce_rest_cannot_view`
        (not `woocommerce_rest_authentication_error`, its answer to wrong keys). WooCommerce reads
        keys from the query string over HTTPS only (over http it expects OAuth 1.0a signatures), and
        never sending them in clear over http is ours to keep. The HTTP client's log lines carry no query
        value (bus.logs), so the keys are not logged.
        """
        url = self._woo_url(creds, path)
        https = urlsplit(url).scheme.lower() == "https"
        store = creds.cache_identity()
        if not (https and store in self._query_auth):
            try:
                return await self._send(
                    "GET",
                    url,
                    deadline=deadline,
                    params=params,
                    headers={"Accept": "application/json"},
                    auth=(creds.api_key, creds.api_secret),
                )
            except StoreError as exc:
                if not (https and exc.code == "unauthorized" and exc.store_code == WOO_CANNOT_VIEW):
                    raise
        body = await self._send(
            "GET",
            url,
            deadline=deadline,
            params={**params, "consumer_key": creds.api_key, "consumer_secret": creds.api_secret},
            headers={"Accept": "application/json"},
        )
        self._query_auth[store] = True
        return body

    # ---- Shopify -------------------------------------------------------------------------------

    async def _shopify(self, creds: StoreCredentials, query: str, variables: JSON, deadline: float) -> JSON:
        """One GraphQL query. Shopify's cost throttle answers HTTP 200 with an error whose
        `extensions.code` is THROTTLED and the bucket in `extensions.cost`: the query is retried once
        the bucket holds its cost, when that fits the deadline; otherwise the store is busy at once."""
        url = f"{creds.base_url.rstrip('/')}/admin/api/{self._shopify_version}/graphql.json"
        loop = asyncio.get_running_loop()
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            body = await self._send(
                "POST",
                url,
                deadline=deadline,
                headers={"X-Shopify-Access-Token": creds.access_token, "Accept": "application/json"},
                json={"query": query, "variables": variables},
            )
            if not isinstance(body, Mapping):
                raise StoreError("store_error", "unexpected GraphQL response")
            errors = body.get("errors")
            if not errors:
                data = body.get("data")
                if not isinstance(data, Mapping):
                    raise StoreError("store_error", "GraphQL response without data")
                return dict(data)
            codes = {
                str((e.get("extensions") or {}).get("code"))
                for e in (errors if isinstance(errors, list) else [])
                if isinstance(e, Mapping)
            }
            if "THROTTLED" not in codes:
                raise StoreError("store_error", "GraphQL errors")
            wait = throttle_wait_s(body.get("extensions"))
            if wait is None or attempt == MAX_THROTTLED_RETRIES:
                break
            if loop.time() + wait + ANSWER_MARGIN_S >= deadline:
                break
            await asyncio.sleep(wait)  # until the bucket holds the query's cost
        raise StoreError("rate_limited", "GraphQL cost throttle")

    # ---- use cases -----------------------------------------------------------------------------

    async def products(
        self, creds: StoreCredentials, query: str, limit: int, deadline: float
    ) -> list[Product]:
        terms = search_terms(query)
        if creds.platform == "woocommerce":
            params: dict[str, str | int] = {"per_page": limit, "status": "publish"}
            if terms:
                params["search"] = terms
            body = await self._woo_get(creds, "products", params, deadline)
            if not isinstance(body, list):
                raise StoreError("store_error", "unexpected products response")
            return [woo_product(p) for p in body if isinstance(p, Mapping)][:limit]
        search = f"title:*{terms}*" if terms else ""
        data = await self._shopify(creds, SHOPIFY_PRODUCTS_QUERY, {"first": limit, "query": search}, deadline)
        return [shopify_product(n) for n in _nodes(data.get("products"))][:limit]

    async def orders(
        self,
        creds: StoreCredentials,
        order_number: str | None,
        email: str | None,
        limit: int,
        deadline: float,
    ) -> list[Order]:
        """The orders whose number is `order_number` (else: whose e-mail is `email`), newest first.

        By number, never by id: shops with sequential or custom numbering (e.g. the "Sequential
        Order Numbers" plugins) give orders a `number` unlike their internal `id`, and WooCommerce's
        `search` finds them by number (and by address, phone, item name…: only exact numbers are
        kept). Shopify's order `name` is the number (``#1001``). Who may hear them is the caller's
        business (`service.py`), so the billing contact comes along.
        """
        number = order_name(order_number) if order_number else ""
        mail = email.strip().lower() if email else ""
        if not number and not mail:
            return []
        if creds.platform == "woocommerce":
            per_page = WOO_ORDER_SEARCH_PAGE if number else 10
            body = await self._woo_get(
                creds, "orders", {"search": number or mail, "per_page": per_page}, deadline
            )
            if not isinstance(body, list):
                raise StoreError("store_error", "unexpected orders response")
            return [
                woo_order(o)
                for o in body
                if isinstance(o, Mapping)
                and (
                    same_order_number(o.get("number") or o.get("id"), number)
                    if number
                    else str((o.get("billing") or {}).get("email", "")).lower() == mail
                )
            ]
        search = f"name:#{number}" if number else f'email:"{mail}"'
        data = await self._shopify(creds, SHOPIFY_ORDERS_QUERY, {"first": limit, "query": search}, deadline)
        return [
            shopify_order(n)
            for n in _nodes(data.get("orders"))
            if (
                same_order_number(n.get("name"), number)
                if number
                else str(n.get("email") or "").lower() == mail
            )
        ]


def _decode(response: OutboundResponse) -> Any:
    status = response.status_code
    if status in (401, 403):
        raise StoreError("unauthorized", f"store answered {status}", _error_code(response.content))
    if status == 404:
        raise StoreError("not_found", "store answered 404")
    if not 200 <= status < 300:
        raise StoreError("store_error", f"store answered {status}")
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise StoreError("store_error", "store answered with something other than JSON") from exc


def _error_code(content: bytes) -> str | None:
    """WooCommerce's (WP REST) error body ``{"code", "message", "data": {"status"}}`` → its code."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return _str(body.get("code")) if isinstance(body, Mapping) else None
