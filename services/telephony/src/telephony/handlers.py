"""Subscribers: decode a telephony command (or a post-call webhook event) and hand it to its use case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bus.runtime import Bus
from contracts import topics
from contracts.telephony import (
    DeleteCustomerSession,
    DeletePhoneNumber,
    ImportSipTrunkNumber,
    ImportTwilioNumber,
    PlaceCall,
    StoreCustomerSession,
    TelephonyCommand,
    UpdatePhoneNumber,
)
from contracts.webhooks import PostCallWebhookReceived
from telephony.service import TelephonyService


def register(bus: Bus, service: TelephonyService) -> None:
    routes: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
        ImportTwilioNumber: service.import_twilio_number,
        ImportSipTrunkNumber: service.import_sip_trunk_number,
        UpdatePhoneNumber: service.update_phone_number,
        DeletePhoneNumber: service.delete_phone_number,
        PlaceCall: service.place_call,
        StoreCustomerSession: service.store_customer_session,
        DeleteCustomerSession: service.delete_customer_session,
    }

    async def handle(command: Any) -> None:
        """Telephony commands: phone numbers, outbound calls and customer sessions."""
        await routes[type(command)](command)

    async def post_call(event: PostCallWebhookReceived) -> None:
        """Verified post-call webhooks: move the call to its final status."""
        await service.record_post_call(event)

    # One at a time: placing a call and managing numbers call ElevenLabs, and their commit must
    # come before that call (a batch rolled back for another message would call it again).
    bus.subscribe(topics.TELEPHONY_COMMANDS, TelephonyCommand, handle)
    # Only this type is consumed from the webhook events topic; the bus skips the others. In
    # batches: recording a post-call webhook locks its call row and writes the status and the
    # outbox event, nothing else (no HTTP call). Webhooks are keyed by conversation, so batches
    # of different partitions lock different calls; reconciliation locks with SKIP LOCKED and
    # never waits for a batch.
    bus.subscribe(topics.WEBHOOK_EVENTS, PostCallWebhookReceived, post_call, batch=True)
