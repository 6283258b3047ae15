"""Signed webhooks to the customer's systems (beyond the spec; issue 13). The notifier delivers them;
this is their REST face. The signing secret is generated here, shown once in the create answer and
sent to the notifier only encrypted."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse

from gateway import views
from gateway.models import Webhook
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
from gateway.webhooks import Webhooks

router = api_router()


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
    return respond(await Webhooks(service).create(body))


@router.get("/webhooks", tags=["webhooks"], response_model=WebhookList)
async def list_webhooks(
    service: Service, page_size: PageSize = 30, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(Webhook, cursor, page_size)
    return {"webhooks": [views.webhook_view(w) for w in rows], "cursor": next_cursor}


@router.get("/webhooks/{webhook_id}", tags=["webhooks"], response_model=WebhookOut)
async def get_webhook(webhook_id: str, service: Service) -> dict[str, Any]:
    return views.webhook_view(await service.get(Webhook, webhook_id, "Webhook not found"))


@router.delete("/webhooks/{webhook_id}", tags=["webhooks"], response_model=Done, responses=WRITE_RESPONSES)
async def delete_webhook(webhook_id: str, service: Service) -> JSONResponse:
    return respond(await Webhooks(service).delete(webhook_id))


@router.post(
    "/webhooks/{webhook_id}/enable",
    tags=["webhooks"],
    response_model=WebhookOut,
    responses=WRITE_RESPONSES,
)
async def enable_webhook(webhook_id: str, service: Service) -> JSONResponse:
    """Re-enable a webhook disabled after its failure streak; its held deliveries go out again."""
    return respond(await Webhooks(service).enable(webhook_id))


@router.get("/webhooks/{webhook_id}/deliveries", tags=["webhooks"], response_model=DeliveryList)
async def list_deliveries(
    webhook_id: str,
    service: Service,
    page_size: PageSize = 30,
    cursor: str | None = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
) -> dict[str, Any]:
    """Deliveries newest first, each with every attempt (status code, excerpt, error, timing)."""
    return await Webhooks(service).deliveries(webhook_id, cursor, page_size, status)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/resend",
    tags=["webhooks"],
    response_model=DeliveryOut,
    responses=WRITE_RESPONSES,
)
async def resend_delivery(webhook_id: str, delivery_id: str, service: Service) -> JSONResponse:
    """Send a delivery again now, whatever its status (same event id and body, a fresh retry window)."""
    return respond(await Webhooks(service).resend(webhook_id, delivery_id))
