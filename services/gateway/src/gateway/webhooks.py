"""Signed webhooks to the customer's systems (beyond the spec; issue 13): subscribe, unsubscribe,
re-enable, and resend a delivery, through the notifier. The signing secret is generated here, shown
once in the create answer and sent to the notifier only encrypted."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

from bus.outbound import OutboundRefused, allowlisted, check_target, parse_allow_hosts
from contracts import topics
from contracts.notifier import (
    CreateWebhookSubscription,
    DeleteWebhookSubscription,
    EnableWebhookSubscription,
    ResendWebhookDelivery,
)
from gateway import domain, views
from gateway.domain import Outcome
from gateway.errors import NotFound, Unprocessable
from gateway.models import Webhook
from gateway.schemas import WebhookCreateRequest
from gateway.service import GatewayService

# How long the gateway waits for a webhook URL's host to resolve before refusing it.
RESOLVE_TIMEOUT_S = 5.0


def allowlisted_http(url: str, allow_hosts: frozenset[str]) -> bool:
    """http is allowed only to a host on OUTBOUND_ALLOW_HOSTS (a private receiver)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    return bool(parts.hostname) and allowlisted(allow_hosts, parts.hostname or "", port)


class Webhooks:
    """The use cases behind `/webhooks`. Writes answer their command's outcome."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.settings = service.settings

    async def create(self, body: WebhookCreateRequest) -> Outcome:
        """Subscribe `url` to `event_types`: 201 with the webhook and its `signing_secret`, the only
        time it is shown. Unprocessable when the URL's target is refused (bus.outbound)."""
        allow_hosts = parse_allow_hosts(self.settings.outbound_allow_hosts)
        try:
            await check_target(
                body.url,
                allow_http=allowlisted_http(body.url, allow_hosts),
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
            signing_secret_encrypted=domain.encrypt(
                self.settings.keyring, secret, "signing_secret_encrypted"
            ),
        )
        outcome = await self.service.execute(
            command, topic=topics.NOTIFIER_COMMANDS, key=command.subscription_id
        )
        if not outcome.succeeded:
            return outcome
        # Shown once: the read model and the operation row never hold it.
        status = 201 if outcome.status_code == 200 else outcome.status_code
        return Outcome(status, outcome.body | {"signing_secret": secret})

    async def delete(self, webhook_id: str) -> Outcome:
        await self.service.get(Webhook, webhook_id, "Webhook not found")
        command = DeleteWebhookSubscription(subscription_id=webhook_id)
        return await self.service.execute(command, topic=topics.NOTIFIER_COMMANDS, key=webhook_id)

    async def enable(self, webhook_id: str) -> Outcome:
        """Re-enable a webhook disabled after its failure streak; its held deliveries go out again."""
        await self.service.get(Webhook, webhook_id, "Webhook not found")
        command = EnableWebhookSubscription(subscription_id=webhook_id)
        return await self.service.execute(command, topic=topics.NOTIFIER_COMMANDS, key=webhook_id)

    async def deliveries(
        self, webhook_id: str, cursor: str | None, page_size: int, status: str | None
    ) -> dict[str, Any]:
        """A page of the webhook's deliveries, newest first, each with every attempt. NotFound."""
        await self.service.get(Webhook, webhook_id, "Webhook not found")
        rows, next_cursor = await self.service.webhook_deliveries(webhook_id, cursor, page_size, status)
        return {
            "deliveries": [views.delivery_log_view(d, attempts) for d, attempts in rows],
            "cursor": next_cursor,
        }

    async def resend(self, webhook_id: str, delivery_id: str) -> Outcome:
        """Send a delivery again now (same event id and body, a fresh retry window). NotFound."""
        await self.service.get(Webhook, webhook_id, "Webhook not found")
        delivery = await self.service.webhook_delivery(delivery_id)
        if delivery is None or delivery.webhook_id != webhook_id:
            raise NotFound(f"Delivery not found: {delivery_id}")
        command = ResendWebhookDelivery(subscription_id=webhook_id, delivery_id=delivery_id)
        return await self.service.execute(command, topic=topics.NOTIFIER_COMMANDS, key=webhook_id)
