"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bus.uow import TransactionScope
from contracts.topics import NOTIFIER_EVENTS
from notifier.models import CONSUMER, inbox
from notifier.repository import (
    CampaignStatusRepository,
    DeliveryRepository,
    SubscriptionRepository,
    WebhookQueueRepository,
)


class UnitOfWork(TransactionScope):
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    deliveries: DeliveryRepository
    subscriptions: SubscriptionRepository
    webhooks: WebhookQueueRepository
    campaign_statuses: CampaignStatusRepository
    events_topic = NOTIFIER_EVENTS
    inbox_table = inbox
    consumer = CONSUMER

    def _open(self, session: AsyncSession) -> None:
        self.deliveries = DeliveryRepository(session)
        self.subscriptions = SubscriptionRepository(session)
        self.webhooks = WebhookQueueRepository(session)
        self.campaign_statuses = CampaignStatusRepository(session)
