"""The edges: HTTP routes ElevenLabs calls and bus subscribers. Parse, call one use case, answer.

Routes live under `/api/v1/webhook`: the signed post-call webhook, the mid-call tools (e-commerce,
e-mail; each authenticated by its `X-Switchboard-Tool-Token`) and an unauthenticated echo test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.requests import ClientDisconnect

from bus.context import CORRELATION_HEADER, bind_correlation_id
from bus.runtime import Bus
from contracts import topics
from contracts.provisioning import (
    EcommerceToolsCreated,
    EmailTemplateCreated,
    EmailTemplateDeleted,
    ToolCreated,
    ToolDeleted,
    ToolTokenRotated,
)
from contracts.telephony import CallPlaced, CustomerSessionDeleted, CustomerSessionStored
from contracts.text import without_nul
from contracts.webhooks import RegisterPostCallWebhook, WebhookCommand
from tool_webhooks import domain, metrics, openapi
from tool_webhooks.call_control import CallControl
from tool_webhooks.domain import SIGNATURE_HEADER, TOOL_TOKEN_HEADER, InvalidSignature
from tool_webhooks.service import ToolService, WebhookService
from tool_webhooks.spool import SpooledBody

log = structlog.get_logger("tool_webhooks.handlers")

API_PREFIX = "/api/v1/webhook"
TOOL_MAX_BODY_BYTES = 64 * 1024

TelephonyProjected = Annotated[
    CallPlaced | CustomerSessionStored | CustomerSessionDeleted, Field(discriminator="type")
]
ProvisioningProjected = Annotated[
    EmailTemplateCreated
    | EmailTemplateDeleted
    | ToolCreated
    | EcommerceToolsCreated
    | ToolTokenRotated
    | ToolDeleted,
    Field(discriminator="type"),
]

try:
    SERVICE_VERSION = version("tool-webhooks")
except PackageNotFoundError:  # running from a source tree without metadata
    SERVICE_VERSION = "0.0.0"


class BodyTooLarge(Exception):
    pass


def _error(status: int, error: str, detail: str | None, *, unread_body: bool = False) -> JSONResponse:
    # Refused before its body was read: close the connection rather than let the server drain
    # (possibly hundreds of megabytes) to keep it alive.
    headers = {"connection": "close"} if unread_body else None
    return JSONResponse(
        {"success": False, "error": error, "detail": detail}, status_code=status, headers=headers
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw bytes (signatures are over them), refusing more than `limit` bytes early."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


UNAUTHORIZED = {
    "success": False,
    "error": "Unauthorized tool call",
    # One answer for every reason (missing, forged, another tool's, deleted, superseded): the
    # reason is logged, not told to the caller.
    "detail": "The tool token is missing, invalid, revoked or expired",
}


async def _tool_body(request: Request) -> dict[str, Any] | JSONResponse:
    """The JSON object ElevenLabs sent, or a spoken refusal (never a stack trace)."""
    try:
        raw = await _read_body(request, TOOL_MAX_BODY_BYTES)
    except BodyTooLarge:
        return _error(413, "too_large", "That request was too large for me.")
    try:
        # A NUL in the agent's arguments cannot be stored (contracts.text): a space instead, as the
        # e-mail tool's header flattening makes of any control character.
        value = without_nul(json.loads(raw), " ") if raw else {}
    except (ValueError, UnicodeDecodeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        return _error(400, "bad_request", "I couldn't read that request.")
    return value


def make_tool_router(tools: ToolService, calls: CallControl) -> APIRouter:
    """Mid-call tools. The token is checked before the body is read: a refused call has no effect."""
    router = APIRouter(prefix=API_PREFIX, tags=["tools"])

    async def refused(tool: str, route: str, request: Request) -> JSONResponse | None:
        reason = await tools.tool_token_refusal(route, request.headers.get(TOOL_TOKEN_HEADER))
        if reason is None:
            return None
        metrics.TOOL_CALLS.labels(tool, "unauthorized").inc()
        log.warning("tool_webhooks.tool.unauthorized", tool=tool, reason=reason)
        return JSONResponse(UNAUTHORIZED, status_code=401)

    @router.post("/ecommerce/products", response_model=None, **openapi.tool_route(openapi.PRODUCTS_CALL))
    async def products(request: Request) -> JSONResponse:
        """`get_products`: `{conversation_id, query?, limit?}` → products the agent can read out."""
        bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        if (refusal := await refused("products", domain.PRODUCTS_ROUTE, request)) is not None:
            return refusal
        body = await _tool_body(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse(await tools.products(body))

    @router.post("/ecommerce/orders", response_model=None, **openapi.tool_route(openapi.ORDERS_CALL))
    async def orders(request: Request) -> JSONResponse:
        """`get_orders`: `{conversation_id, order_number?, email?, postcode?}` → the caller's order status."""
        bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        if (refusal := await refused("orders", domain.ORDERS_ROUTE, request)) is not None:
            return refusal
        body = await _tool_body(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse(await tools.orders(body))

    @router.post("/email/{template_id}", response_model=None, **openapi.tool_route(openapi.EMAIL_CALL))
    async def email(template_id: str, request: Request) -> JSONResponse:
        """An e-mail template's tool: its parameters + `conversation_id` → SendEmail (once)."""
        bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        if (refusal := await refused("email", domain.email_route(template_id), request)) is not None:
            return refusal
        body = await _tool_body(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse(await tools.send_email(template_id, body))

    @router.post("/calls/opt-out", response_model=None, **openapi.tool_route(openapi.OPT_OUT_CALL))
    async def opt_out(request: Request) -> JSONResponse:
        """`opt_out`: `{conversation_id, called_number?, reason?}` → the number is never called again."""
        bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        if (refusal := await refused("opt_out", domain.OPT_OUT_ROUTE, request)) is not None:
            return refusal
        body = await _tool_body(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse(await calls.opt_out(body))

    @router.post("/calls/callback", response_model=None, **openapi.tool_route(openapi.CALLBACK_CALL))
    async def callback(request: Request) -> JSONResponse:
        """`schedule_callback`: `{conversation_id, requested_time, called_number?}` → what was booked."""
        bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        if (refusal := await refused("callback", domain.CALLBACK_ROUTE, request)) is not None:
            return refusal
        body = await _tool_body(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse(await calls.callback(body))

    @router.post("/test", response_model=None, **openapi.TEST_ROUTE)
    async def test(request: Request) -> JSONResponse:
        """Connectivity check, no authentication and no effect: echoes the JSON body (or null)."""
        try:
            raw = await _read_body(request, TOOL_MAX_BODY_BYTES)
            echo = json.loads(raw) if raw else None
        except (BodyTooLarge, ValueError, UnicodeDecodeError, RecursionError):
            echo = None
        return JSONResponse(
            {
                "status": "ok",
                "echo": echo,
                "time": datetime.now(UTC).isoformat(),
                "service": "tool-webhooks",
                "version": SERVICE_VERSION,
            }
        )

    return router


def make_router(service: WebhookService, *, max_body_bytes: int, spool_memory_bytes: int) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["webhooks"])

    def invalid(exc: InvalidSignature, *, unread_body: bool = False) -> JSONResponse:
        metrics.POST_CALL_WEBHOOKS.labels("invalid_signature").inc()
        log.warning("tool_webhooks.post_call.invalid_signature", detail=exc.detail)
        return _error(401, "Invalid signature", exc.detail, unread_body=unread_body)

    def too_large() -> JSONResponse:
        metrics.POST_CALL_WEBHOOKS.labels("too_large").inc()
        log.warning("tool_webhooks.post_call.too_large", limit=max_body_bytes)
        return _error(
            413, "Payload too large", f"Bodies are limited to {max_body_bytes} bytes", unread_body=True
        )

    @router.post("/elevenlabs/post-call", response_model=None, **openapi.POST_CALL_ROUTE)
    async def post_call(request: Request) -> JSONResponse:
        """ElevenLabs post-call webhook (HMAC-signed); 200 once written to the outbox (or kept).

        ElevenLabs sends each delivery once and disables an endpoint that keeps failing, so only a
        missing, malformed, stale or wrong signature is refused (401): the header is checked before
        the body is read, the HMAC while it streams (spooled to disk past a small buffer, never
        held whole). Past TOOL_WEBHOOKS_MAX_BODY_BYTES: 413.
        """
        bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        try:
            check = await service.signature_check(request.headers.get(SIGNATURE_HEADER))
        except InvalidSignature as exc:
            return invalid(exc, unread_body=True)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return too_large()
        with SpooledBody(spool_memory_bytes) as body:
            try:
                async for chunk in request.stream():
                    check.update(chunk)
                    body.write(chunk)
                    if body.size > max_body_bytes:
                        return too_large()
            except ClientDisconnect:
                metrics.POST_CALL_WEBHOOKS.labels("disconnected").inc()
                log.warning("tool_webhooks.post_call.disconnected", received_bytes=body.size)
                return _error(400, "Client disconnected", "The body ended early")
            try:
                outcome = await service.receive_post_call(check, body)
            except InvalidSignature as exc:
                return invalid(exc)
        metrics.POST_CALL_WEBHOOKS.labels(outcome).inc()
        return JSONResponse({"status": outcome}, status_code=200)

    return router


def register(bus: Bus, service: WebhookService, tools: ToolService) -> None:
    async def handle(message: Any) -> None:
        """Register-webhook commands, and the projections the mid-call tools read.

        One consumer for the three topics: each consumer polls the broker on its own, in the same
        event loop that answers ElevenLabs mid-call, so fewer consumers means a steadier tool latency.
        """
        match message:
            case RegisterPostCallWebhook():
                await service.handle_register_command(message)
            case (
                EmailTemplateCreated()
                | EmailTemplateDeleted()
                | ToolCreated()
                | EcommerceToolsCreated()
                | ToolTokenRotated()
                | ToolDeleted()
            ):
                await tools.project_provisioning(message)
            case _:
                await tools.project_telephony(message)

    # In batches (one transaction and one offset commit per fetch): the projections only upsert
    # rows of this database after their inbox claim. A register command calls ElevenLabs, so it
    # is handled `alone`, never in a batch's transaction (a rollback of the batch for another
    # message would register again); the batch is cut around it, in order. Concurrent batches
    # (other replicas, other partitions) that upsert the same rows in another order are a
    # deadlock PostgreSQL breaks by aborting one: that batch is handled again message by message.
    bus.subscribe_many(
        {
            topics.WEBHOOK_COMMANDS: WebhookCommand,
            topics.TELEPHONY_EVENTS: TelephonyProjected,
            topics.PROVISIONING_EVENTS: ProvisioningProjected,
        },
        handle,
        batch=True,
        alone=lambda message: isinstance(message, RegisterPostCallWebhook),
    )
