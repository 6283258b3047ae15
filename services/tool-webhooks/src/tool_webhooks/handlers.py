"""The edges: HTTP routes ElevenLabs calls and bus subscribers. Parse, call one use case, answer.

Routes live under `/api/v1/webhook`; mid-call tool endpoints (e-commerce, e-mail) join this router.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bus.context import CORRELATION_HEADER, bind_correlation_id
from bus.runtime import Bus
from contracts import topics
from contracts.webhooks import WebhookCommand
from tool_webhooks import metrics
from tool_webhooks.domain import SIGNATURE_HEADER, InvalidSignature, MalformedPayload
from tool_webhooks.service import WebhookService

log = structlog.get_logger("tool_webhooks.handlers")

API_PREFIX = "/api/v1/webhook"


class BodyTooLarge(Exception):
    pass


def _error(status: int, error: str, detail: str | None) -> JSONResponse:
    return JSONResponse({"success": False, "error": error, "detail": detail}, status_code=status)


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


def make_router(service: WebhookService, *, max_body_bytes: int) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX, tags=["webhooks"])

    @router.post("/elevenlabs/post-call", response_model=None)
    async def post_call(request: Request) -> JSONResponse:
        """ElevenLabs post-call webhook (HMAC-signed); acknowledged once written to the outbox."""
        bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        try:
            body = await _read_body(request, max_body_bytes)
        except BodyTooLarge:
            metrics.POST_CALL_WEBHOOKS.labels("too_large").inc()
            return _error(413, "Payload too large", f"Bodies are limited to {max_body_bytes} bytes")
        try:
            outcome = await service.receive_post_call(body, request.headers.get(SIGNATURE_HEADER))
        except InvalidSignature as exc:
            metrics.POST_CALL_WEBHOOKS.labels("invalid_signature").inc()
            log.warning("tool_webhooks.post_call.invalid_signature", detail=exc.detail)
            return _error(401, "Invalid signature", exc.detail)
        except MalformedPayload as exc:
            metrics.POST_CALL_WEBHOOKS.labels("malformed").inc()
            log.warning("tool_webhooks.post_call.malformed", detail=exc.detail)
            return _error(400, "Malformed payload", exc.detail)
        metrics.POST_CALL_WEBHOOKS.labels(outcome).inc()
        return JSONResponse({"status": outcome}, status_code=200)

    return router


def register(bus: Bus, service: WebhookService) -> None:
    async def handle(command: Any) -> None:
        """Webhook commands: register the workspace post-call webhook."""
        await service.handle_register_command(command)

    bus.subscribe(topics.WEBHOOK_COMMANDS, WebhookCommand, handle)
