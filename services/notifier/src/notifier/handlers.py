"""Subscribers: decode a notifier command (or an event webhooks are made of) and hand it to its use case."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bus.runtime import Bus
from contracts import topics
from contracts.base import Command, Event
from contracts.campaigns import (
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignUpdated,
)
from contracts.notifier import NotifierCommand, SendEmail
from contracts.telephony import CallStatusChanged
from notifier.service import NotifierService
from notifier.webhook_service import WebhookService

# The events webhooks are made of; every other type on these topics is skipped (tolerant reader).
CampaignWebhookSource = Annotated[
    CampaignUpdated | CampaignRecipientUpdated | CampaignRecipientsStaged | CampaignRecipientsClosed,
    Field(discriminator="type"),
]
SOURCE_TOPICS = {topics.TELEPHONY_EVENTS: CallStatusChanged, topics.CAMPAIGN_EVENTS: CampaignWebhookSource}


def register(bus: Bus, service: NotifierService, webhooks: WebhookService) -> None:
    async def handle(command: Command) -> None:
        """`email.send`: send one rendered e-mail, at most once per message_id; `webhook_*`:
        subscriptions and resends."""
        if isinstance(command, SendEmail):
            await service.send_email(command)
        else:
            await webhooks.handle_command(command)

    async def handle_event(event: Event) -> None:
        """Calls finished, recipients final, campaign status changes: queue their webhooks."""
        await webhooks.handle_event(event)

    bus.subscribe(topics.NOTIFIER_COMMANDS, NotifierCommand, handle)
    bus.subscribe_many(SOURCE_TOPICS, handle_event)
