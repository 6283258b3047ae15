"""Commands to and events from the notifier service: e-mail delivery, and signed webhooks to the
customer's own systems (subscriptions and their deliveries).

A webhook subscription's signing secret travels only as ciphertext (`signing_secret_encrypted`,
made with the deployment's SWITCHBOARD_SECRET_KEY through `bus.secrets`); only the notifier
decrypts it, to sign.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Command, CommandFailed, Event


class _Value(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SendEmail(Command):
    """Send one rendered e-mail. `message_id` identifies the tool invocation: it is sent at most once."""

    type: Literal["email.send"] = "email.send"
    conversation_id: str = Field(description="Conversation whose agent asked for the e-mail.")
    template_id: str = Field(description="Template that was rendered.")
    to_email: str = Field(description="Recipient address.")
    to_name: str | None = Field(default=None, description="Recipient display name.")
    from_email: str | None = Field(default=None, description="Sender; the notifier's default when absent.")
    subject: str = Field(description="Rendered subject (one line).")
    body: str = Field(description="Rendered plain-text body.")


class EmailSent(Event):
    """An e-mail was handed to the mail server or e-mail API."""

    type: Literal["email.sent"] = "email.sent"
    conversation_id: str = Field(description="Conversation.")
    template_id: str = Field(description="Template.")
    to_email: str = Field(description="Recipient address.")
    from_email: str = Field(description="Sender address used.")
    subject: str = Field(description="Subject sent.")
    transport: Literal["smtp", "http"] = Field(description="How it was sent.")
    sent_at_unix: int = Field(description="When it was accepted, unix seconds.")


class EmailFailed(Event):
    """An e-mail could not be sent (after retries for transient failures)."""

    type: Literal["email.failed"] = "email.failed"
    conversation_id: str = Field(description="Conversation.")
    template_id: str = Field(description="Template.")
    to_email: str = Field(description="Recipient address.")
    subject: str = Field(description="Subject that was to be sent.")
    error: str = Field(description="Why it failed.")
    permanent: bool = Field(
        description="True when retrying cannot help (rejected address, invalid header...)."
    )
    failed_at_unix: int = Field(description="When it was given up, unix seconds.")


# ---- webhooks to the customer's systems --------------------------------------------------------

WebhookEventType = Literal[
    "call.finished",
    "campaign.recipient.finished",
    "campaign.status_changed",
    "campaign.finished",
]
WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
    "call.finished",
    "campaign.recipient.finished",
    "campaign.status_changed",
    "campaign.finished",
)
WebhookSubscriptionStatus = Literal["active", "disabled"]
WebhookDeliveryStatus = Literal["pending", "delivered", "failed"]


class CreateWebhookSubscription(Command):
    """Start delivering the given event types to `url`, signed with the given secret."""

    type: Literal["webhook_subscription.create"] = "webhook_subscription.create"
    subscription_id: str = Field(description="Id chosen by the gateway (whk_<hex>).")
    url: str = Field(description="Target URL (https; http only for hosts on OUTBOUND_ALLOW_HOSTS).")
    event_types: list[WebhookEventType] = Field(description="Event types delivered to it.")
    description: str | None = Field(default=None, description="Free text for the owner.")
    signing_secret_encrypted: str = Field(description="Ciphertext of the signing secret (bus.secrets).")


class DeleteWebhookSubscription(Command):
    """Stop delivering to a subscription; its pending deliveries are dropped."""

    type: Literal["webhook_subscription.delete"] = "webhook_subscription.delete"
    subscription_id: str = Field(description="Subscription id.")


class EnableWebhookSubscription(Command):
    """Re-enable a subscription disabled after its failure streak; held deliveries go out again."""

    type: Literal["webhook_subscription.enable"] = "webhook_subscription.enable"
    subscription_id: str = Field(description="Subscription id.")


class ResendWebhookDelivery(Command):
    """Send a delivery again now (by hand), whatever its status; its retry schedule starts afresh."""

    type: Literal["webhook_delivery.resend"] = "webhook_delivery.resend"
    subscription_id: str = Field(description="Subscription id.")
    delivery_id: str = Field(description="Delivery id.")


class WebhookSubscriptionRecord(_Value):
    """A subscription as the notifier holds it. Never carries the secret."""

    subscription_id: str = Field(description="Subscription id.")
    url: str = Field(description="Target URL.")
    event_types: list[WebhookEventType] = Field(description="Event types delivered to it.")
    description: str | None = Field(default=None, description="Free text for the owner.")
    status: WebhookSubscriptionStatus = Field(description="`disabled` after its failure streak.")
    disabled_reason: str | None = Field(default=None, description="Why it was disabled.")
    consecutive_failures: int = Field(default=0, description="Failed attempts since the last success.")
    failing_since_unix: int | None = Field(default=None, description="First failure of the current streak.")
    created_at_unix: int = Field(description="Creation time, unix seconds.")


class WebhookSubscriptionUpdated(Event):
    """A subscription was created, enabled or disabled; carries the whole subscription."""

    type: Literal["webhook_subscription.updated"] = "webhook_subscription.updated"
    subscription: WebhookSubscriptionRecord = Field(description="The subscription now.")


class WebhookSubscriptionDeleted(Event):
    """A subscription was deleted."""

    type: Literal["webhook_subscription.deleted"] = "webhook_subscription.deleted"
    subscription_id: str = Field(description="Subscription id.")


class WebhookAttempt(_Value):
    """One HTTP attempt of a delivery and what the receiver answered."""

    attempt: int = Field(description="1-based attempt number of the delivery.")
    started_at_ms: int = Field(description="When the request started, unix milliseconds.")
    duration_ms: int = Field(description="Until the answer (or the failure), milliseconds.")
    status_code: int | None = Field(default=None, description="HTTP status answered, if any.")
    response_excerpt: str | None = Field(default=None, description="Start of the answer's body.")
    error: str | None = Field(default=None, description="Why it failed (timeout, refused URL...).")
    manual: bool = Field(default=False, description="Sent by hand (resend).")


class WebhookDeliveryUpdated(Event):
    """A delivery was attempted, given up on, or queued again by hand."""

    type: Literal["webhook_delivery.updated"] = "webhook_delivery.updated"
    delivery_id: str = Field(description="Delivery id (one per subscription and event).")
    subscription_id: str = Field(description="Subscription id.")
    event_id: str = Field(description="The webhook event's stable id (receivers dedupe on it).")
    event_type: WebhookEventType = Field(description="Webhook event type.")
    status: WebhookDeliveryStatus = Field(description="`failed` once retries are given up.")
    attempts: int = Field(description="Attempts made so far.")
    next_attempt_at_unix: int | None = Field(default=None, description="When it is tried next, if pending.")
    created_at_unix: int = Field(description="When the event was queued for this subscription.")
    last_attempt: WebhookAttempt | None = Field(default=None, description="The attempt just made, if any.")


NotifierCommand = Annotated[
    SendEmail
    | CreateWebhookSubscription
    | DeleteWebhookSubscription
    | EnableWebhookSubscription
    | ResendWebhookDelivery,
    Field(discriminator="type"),
]
NotifierEvent = Annotated[
    EmailSent
    | EmailFailed
    | WebhookSubscriptionUpdated
    | WebhookSubscriptionDeleted
    | WebhookDeliveryUpdated
    | CommandFailed,
    Field(discriminator="type"),
]
