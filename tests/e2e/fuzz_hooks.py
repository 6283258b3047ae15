"""Schemathesis hooks for the fuzz tests (loaded by `st run` through SCHEMATHESIS_HOOKS).

- `contract_error_format`: every 4xx/5xx is the contract's error format.
- `before_call`, when FUZZ_TOOL_TOKENS / FUZZ_WEBHOOK_SECRET are set (the tool-webhooks run): each
  tool call that sends a token sends its tool's real one (FUZZ_TOOL_TOKENS: route -> token, as
  provisioning gave them to ElevenLabs) and each post-call webhook that sends a signature a valid one
  over the exact bytes sent, so the fuzzed bodies reach the code behind authentication;
  FUZZ_CONVERSATION_ID and FUZZ_TEMPLATE_ID name a real call (with store credentials and a customer
  session) and e-mail template, so the lookups behind them run too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import schemathesis
from schemathesis.core import NOT_SET

from tool_webhooks.domain import (
    ORDERS_ROUTE,
    PRODUCTS_ROUTE,
    SIGNATURE_HEADER,
    TOOL_TOKEN_HEADER,
    email_route,
)

WEBHOOK = "/api/v1/webhook/"


@schemathesis.check
def contract_error_format(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Any) -> None:
    """Every 4xx and 5xx is `{"success": false, "error": "...", "detail"?}` (api-v1.md 12)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} is not JSON: {response.text[:200]!r}") from None
    assert isinstance(body, dict), f"{response.status_code} body is not an object: {body!r}"
    assert body.get("success") is False, f"{response.status_code} without success=false: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"], f"no error message: {body!r}"
    assert set(body) <= {"success", "error", "detail"}, f"fields beyond the format: {sorted(body)}"


def _route(case: Any) -> str | None:
    path = case.operation.path
    if path == f"{WEBHOOK}ecommerce/products":
        return PRODUCTS_ROUTE
    if path == f"{WEBHOOK}ecommerce/orders":
        return ORDERS_ROUTE
    if path == f"{WEBHOOK}email/{{template_id}}":
        template_id = os.environ.get("FUZZ_TEMPLATE_ID")
        if template_id:
            case.path_parameters = {**(case.path_parameters or {}), "template_id": template_id}
        return email_route(str((case.path_parameters or {}).get("template_id", "")))
    return None


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    tokens: dict[str, str] = json.loads(os.environ.get("FUZZ_TOOL_TOKENS") or "{}")
    webhook_secret = os.environ.get("FUZZ_WEBHOOK_SECRET")
    if not (tokens or webhook_secret) or not case.operation.path.startswith(WEBHOOK):
        return
    conversation_id = os.environ.get("FUZZ_CONVERSATION_ID")
    if conversation_id and isinstance(case.body, dict) and isinstance(case.body.get("conversation_id"), str):
        case.body = {**case.body, "conversation_id": conversation_id}
    headers = case.headers or {}
    route = _route(case)
    if route is not None and tokens:
        # Only where the case sends the header: a case testing its absence stays without it.
        if TOOL_TOKEN_HEADER in headers and route in tokens:
            case.headers = {**headers, TOOL_TOKEN_HEADER: tokens[route]}
    elif (
        case.operation.path == f"{WEBHOOK}elevenlabs/post-call"
        and webhook_secret
        and SIGNATURE_HEADER in headers
    ):
        # Signed over the bytes sent: serialise here (as the JSON serialiser would) and send those.
        if case.body is NOT_SET:
            body = b""
        elif isinstance(case.body, bytes):
            body = case.body
        else:
            body = json.dumps(case.body).encode()
            case.body = body
        stamp = int(time.time())
        digest = hmac.new(webhook_secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        case.headers = {**headers, SIGNATURE_HEADER: f"t={stamp},v0={digest}"}
