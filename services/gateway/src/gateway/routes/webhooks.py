"""Signed webhooks to the customer's systems (beyond the spec; issue 13). The notifier delivers them;
this is their REST face. The signing secret is generated here, shown once in the create answer and
sent to the notifier only encrypted."""

from __future__ import annotations

import uuid
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from bus.outbound import OutboundRefused, allowlisted, check_target, parse_allow_hosts
from contracts import topics
from contracts.notifier import (
    CreateWebhookSubscription,
    DeleteWebhookSubscription,
    EnableWebhookSubscription,
    ResendWebhookDelivery,
)
from gateway import domain
from gateway.errors import NotFound, Unprocessable
from gateway.models import Webhook, WebhookDelivery, WebhookDeliveryAttempt
from gateway.responses import (
    WRITE_RESPONSES,
    DeliveryList,
    DeliveryOut,
    Done,
    WebhookCreatedOut,
    WebhookList,
    WebhookOut,
)
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import WebhookCreateRequest

router = api_router()

# How long the gateway waits for a webhook URL's host to resolve before refusing it.
RESOLVE_TIMEOUT_S = 5.0


def webhook_view(w: Webhook) -> dict[str, Any]:
    return {
        "webhook_id": w.webhook_id,
        "url": w.url,
        "event_types": w.event_types,
        "description": w.description,
        "status": w.status,
        "disabled_reason": w.disabled_reason,
        "consecutive_failures": w.consecutive_failures,
        "failing_since_unix": w.failing_since_unix,
        "created_at_unix": w.created_at_unix,
    }


def attempt_view(a: WebhookDeliveryAttempt) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "started_at_ms": a.started_at_ms,
        "duration_ms": a.duration_ms,
        "status_code": a.status_code,
        "response_excerpt": a.response_excerpt,
        "error": a.error,
        "manual": a.manual,
    }


def delivery_view(d: WebhookDelivery, attempts: list[WebhookDeliveryAttempt]) -> dict[str, Any]:
    return {
        "delivery_id": d.delivery_id,
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at_unix": d.next_attempt_at_unix,
        "created_at_unix": d.created_at_unix,
        "attempt_log": [attempt_view(a) for a in attempts],
    }


@router.post(
    "/webhooks",
    tags=["webhooks"],
    status_code=201,
    response_model=WebhookCreatedOut,
    responses=WRITE_RESPONSES,
)
async def create_webhook(body: WebhookCreateRequest, service: Service) -> JSONResponse:
    """Subscribe `url` to `event_types`. The answer carries `signing_secret` — the only time it is
    shown: keep it to verify `Switchboard-Signature`."""
    allow_hosts = parse_allow_hosts(service.settings.outbound_allow_hosts)
    try:
        await check_target(
            body.url,
            allow_http=_allowlisted_http(body.url, allow_hosts),
            allow_hosts=allow_hosts,
            timeout_s=RESOLVE_TIMEOUT_S,
        )
    except OutboundRefused as exc:
        raise Unprocessable("Webhook URL refused", exc.reason) from None
    secret = domain.new_signing_secret()
    command = CreateWebhookSubscription(
        subscription_id="whk_" + uuid.uuid4().hex,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
        signing_secret_encrypted=domain.encrypt(service.settings.keyring, secret, "signing_secret_encrypted"),
    )
    outcome = await service.execute(command, topic=topics.NOTIFIER_COMMANDS, key=command.subscription_id)
    response = respond(outcome)
    if outcome.succeeded:
        # Shown once: the read model and the operation row never hold it.
        body_out = outcome.body | {"signing_secret": secret}
        status = 201 if outcome.status_code == 200 else outcome.status_code
        response = JSONResponse(body_out, status_code=status)
    return response


def _allowlisted_http(url: str, allow_hosts: frozenset[str]) -> bool:
    """http is allowed only to a host on OUTBOUND_ALLOW_HOSTS (a private receiver)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return bool(parts.hostname) and allowlisted(allow_hosts, parts.hostname or "", port)


@router.get("/webhooks", tags=["webhooks"], response_model=WebhookList)
async def list_webhooks(
    service: Service, page_size: PageSize = 30, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(Webhook, cursor, page_size)
    return {"webhooks": [webhook_view(w) for w in rows], "cursor": next_cursor}


@router.get("/webhooks/{webhook_id}", tags=["webhooks"], response_model=WebhookOut)
async def get_webhook(webhook_id: str, service: Service) -> dict[str, Any]:
    return webhook_view(await service.get(Webhook, webhook_id, "Webhook not found"))


@router.delete("/webhooks/{webhook_id}", tags=["webhooks"], response_model=Done, responses=WRITE_RESPONSES)
async def delete_webhook(webhook_id: str, service: Service) -> JSONResponse:
    await service.get(Webhook, webhook_id, "Webhook not found")
    command = DeleteWebhookSubscription(subscription_id=webhook_id)
    return respond(await service.execute(command, topic=topics.NOTIFIER_COMMANDS, key=webhook_id))


@router.post(
    "/webhooks/{webhook_id}/enable",
    tags=["webhooks"],
    response_model=WebhookOut,
    responses=WRITE_RESPONSES,
)
async def enable_webhook(webhook_id: str, service: Service) -> JSONResponse:
    """Re-enable a webhook disabled after its failure streak; its held deliveries go out again."""
    await service.get(Webhook, webhook_id, "Webhook not found")
    command = EnableWebhookSubscription(subscription_id=webhook_id)
    return respond(await service.execute(command, topic=topics.NOTIFIER_COMMANDS, key=webhook_id))


@router.get("/webhooks/{webhook_id}/deliveries", tags=["webhooks"], response_model=DeliveryList)
async def list_deliveries(
    webhook_id: str,
    service: Service,
    page_size: PageSize = 30,
    cursor: str | None = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
) -> dict[str, Any]:
    """Deliveries newest first, each with every attempt (status code, excerpt, error, timing)."""
    await service.get(Webhook, webhook_id, "Webhook not found")
    rows, next_cursor = await service.webhook_deliveries(webhook_id, cursor, page_size, status)
    return {"deliveries": [delivery_view(d, attempts) for d, attempts in rows], "cursor": next_cursor}


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/resend",
    tags=["webhooks"],
    response_model=DeliveryOut,
    responses=WRITE_RESPONSES,
)
async def resend_delivery(webhook_id: str, delivery_id: str, service: Service) -> JSONResponse:
    """Send a delivery again now, whatever its status (same event id and body, a fresh retry window)."""
    await service.get(Webhook, webhook_id, "Webhook not found")
    delivery = await service.webhook_delivery(delivery_id)
    if delivery is None or delivery.webhook_id != webhook_id:
        raise NotFound(f"Delivery not found: {delivery_id}")
    command = ResendWebhookDelivery(subscription_id=webhook_id, delivery_id=delivery_id)
    return respond(await service.execute(command, topic=topics.NOTIFIER_COMMANDS, key=webhook_id))
