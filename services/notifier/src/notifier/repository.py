"""Every query of the notifier service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.notifier import SendEmail
from notifier.models import (
    CampaignStatusSeen,
    Delivery,
    DeliveryStatus,
    SubscriptionStatus,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEventRow,
    WebhookSubscription,
)


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(self, command: SendEmail) -> tuple[Delivery, bool]:
        """Insert a `sending` row unless one exists; returns (row, created_now)."""
        result = await self.session.execute(
            insert(Delivery)
            .values(
                message_id=command.message_id,
                status=DeliveryStatus.SENDING,
                attempts=0,
                conversation_id=command.conversation_id,
                template_id=command.template_id,
                to_email=command.to_email,
                correlation_id=command.correlation_id,
            )
            .on_conflict_do_nothing()
            .returning(Delivery.message_id)
        )
        created = result.first() is not None
        delivery = await self.session.get(Delivery, command.message_id, populate_existing=True)
        assert delivery is not None
        return delivery, created

    async def finish(
        self,
        message_id: str,
        *,
        status: str,
        attempts: int | None,
        last_error: str | None,
        transport: str | None,
        at: datetime,
    ) -> None:
        values: dict[str, object] = {
            "status": status,
            "last_error": last_error,
            "transport": transport,
            "finished_at": at,
        }
        if attempts is not None:
            values["attempts"] = attempts
        await self.session.execute(update(Delivery).where(Delivery.message_id == message_id).values(**values))

    async def get(self, message_id: str) -> Delivery | None:
        return await self.session.get(Delivery, message_id, populate_existing=True)


# ---- webhooks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery this worker holds under `lease_token`, with what it needs to send it."""

    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    attempts: int
    retry_until: datetime
    manual: bool
    created_at: datetime
    lease_token: uuid.UUID
    url: str
    signing_secret_encrypted: str
    body: str


class SubscriptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, values: dict[str, Any]) -> bool:
        """Insert unless the id exists (a redelivered create); True when inserted."""
        result = await self.session.execute(
            insert(WebhookSubscription)
            .values(**values)
            .on_conflict_do_nothing()
            .returning(WebhookSubscription.subscription_id)
        )
        return result.first() is not None

    async def get(self, subscription_id: str, *, for_update: bool = False) -> WebhookSubscription | None:
        query = select(WebhookSubscription).where(WebhookSubscription.subscription_id == subscription_id)
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.execute(query.execution_options(populate_existing=True))
        ).scalar_one_or_none()

    async def active_for(self, event_type: str) -> list[str]:
        """Ids of the active subscriptions that want `event_type`."""
        result = await self.session.execute(
            select(WebhookSubscription.subscription_id).where(
                WebhookSubscription.status == SubscriptionStatus.ACTIVE,
                WebhookSubscription.event_types.contains([event_type]),
            )
        )
        return list(result.scalars())


class WebhookQueueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_events(self, rows: list[dict[str, Any]]) -> None:
        """Store webhook events (event_id, event_type, body, occurred_at); an id already stored
        keeps its first body, so every delivery of an event sends the same bytes."""
        if rows:
            await self.session.execute(insert(WebhookEventRow).values(rows).on_conflict_do_nothing())

    async def add_deliveries(self, rows: list[dict[str, Any]]) -> list[str]:
        """Queue deliveries; one per (subscription, event) whatever the redeliveries. New ids.
        Inserted 1,000 rows a statement (PostgreSQL takes at most 32,767 parameters in one)."""
        queued: list[str] = []
        for start in range(0, len(rows), 1000):
            result = await self.session.execute(
                insert(WebhookDelivery)
                .values(rows[start : start + 1000])
                .on_conflict_do_nothing()
                .returning(WebhookDelivery.delivery_id)
            )
            queued += result.scalars()
        return queued

    async def claim_due(
        self, now: datetime, limit: int, lease_token: uuid.UUID, leased_until: datetime
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` pending deliveries of active subscriptions due by `now` whose lease
        (if any) is over, oldest due first. SKIP LOCKED: replicas claiming at once get disjoint rows."""
        d, s, e = WebhookDelivery, WebhookSubscription, WebhookEventRow
        due = (
            select(d.delivery_id)
            .join(s, s.subscription_id == d.subscription_id)
            .where(
                d.status == WebhookDeliveryStatus.PENDING,
                d.next_attempt_at <= now,
                or_(d.leased_until.is_(None), d.leased_until < now),
                s.status == SubscriptionStatus.ACTIVE,
            )
            .order_by(d.next_attempt_at)
            .limit(limit)
            .with_for_update(of=d, skip_locked=True)
        )
        ids = list((await self.session.execute(due)).scalars())
        if not ids:
            return []
        await self.session.execute(
            update(d).where(d.delivery_id.in_(ids)).values(lease_token=lease_token, leased_until=leased_until)
        )
        rows = await self.session.execute(
            select(
                d.delivery_id,
                d.subscription_id,
                d.event_id,
                d.event_type,
                d.attempts,
                d.retry_until,
                d.manual,
                d.created_at,
                s.url,
                s.signing_secret_encrypted,
                e.body,
            )
            .join(s, s.subscription_id == d.subscription_id)
            .join(e, e.event_id == d.event_id)
            .where(d.delivery_id.in_(ids))
            .order_by(d.next_attempt_at)
        )
        return [ClaimedDelivery(**row._asdict(), lease_token=lease_token) for row in rows]

    async def lease_held(self, delivery_id: str, lease_token: uuid.UUID, now: datetime) -> bool:
        result = await self.session.execute(
            select(WebhookDelivery.delivery_id).where(
                WebhookDelivery.delivery_id == delivery_id,
                WebhookDelivery.lease_token == lease_token,
                WebhookDelivery.leased_until > now,
                WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
            )
        )
        return result.first() is not None

    async def record(
        self, delivery_id: str, lease_token: uuid.UUID, values: dict[str, Any]
    ) -> WebhookDelivery | None:
        """Apply an attempt's result and release the lease, only while this worker holds it
        (a worker that stalled past its lease records nothing: the row is someone else's now)."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id == delivery_id, WebhookDelivery.lease_token == lease_token)
            .values(**values, lease_token=None, leased_until=None)
            .returning(WebhookDelivery)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def get(self, delivery_id: str, *, for_update: bool = False) -> WebhookDelivery | None:
        query = select(WebhookDelivery).where(WebhookDelivery.delivery_id == delivery_id)
        if for_update:
            query = query.with_for_update()
        return (
            await self.session.execute(query.execution_options(populate_existing=True))
        ).scalar_one_or_none()

    async def requeue(self, delivery_id: str, now: datetime, retry_until: datetime) -> WebhookDelivery | None:
        """A resend: pending again, due now, a fresh retry window; any lease is dropped."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id == delivery_id)
            .values(
                status=WebhookDeliveryStatus.PENDING,
                next_attempt_at=now,
                retry_until=retry_until,
                manual=True,
                finished_at=None,
                lease_token=None,
                leased_until=None,
            )
            .returning(WebhookDelivery)
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def release_held(self, subscription_id: str, now: datetime) -> int:
        """Held deliveries of a re-enabled subscription become due now (each gets one attempt at least)."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.subscription_id == subscription_id,
                WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
            )
            .values(next_attempt_at=now, retry_until=func.greatest(WebhookDelivery.retry_until, now))
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def drop_pending(self, subscription_id: str, now: datetime) -> int:
        """A deleted subscription's pending deliveries end as failed (never sent)."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.subscription_id == subscription_id,
                WebhookDelivery.status == WebhookDeliveryStatus.PENDING,
            )
            .values(
                status=WebhookDeliveryStatus.FAILED,
                last_error="subscription deleted",
                finished_at=now,
                lease_token=None,
                leased_until=None,
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def prune_finished(self, cutoff: datetime, batch: int) -> int:
        """Delete up to `batch` deliveries finished before `cutoff`, then events nobody references."""
        ids = select(WebhookDelivery.delivery_id).where(WebhookDelivery.finished_at < cutoff).limit(batch)
        result = await self.session.execute(
            delete(WebhookDelivery).where(WebhookDelivery.delivery_id.in_(ids))
        )
        deleted = int(getattr(result, "rowcount", 0) or 0)
        orphans = (
            select(WebhookEventRow.event_id)
            .where(
                WebhookEventRow.created_at < cutoff,
                ~select(WebhookDelivery.delivery_id)
                .where(WebhookDelivery.event_id == WebhookEventRow.event_id)
                .exists(),
            )
            .limit(batch)
        )
        await self.session.execute(delete(WebhookEventRow).where(WebhookEventRow.event_id.in_(orphans)))
        return deleted


class CampaignStatusRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def swap(self, campaign_id: str, status: str) -> tuple[bool, str | None]:
        """Record `status` as the campaign's; returns (changed, previous status or None)."""
        row = await self.session.get(
            CampaignStatusSeen, campaign_id, with_for_update=True, populate_existing=True
        )
        if row is None:
            await self.session.execute(
                insert(CampaignStatusSeen)
                .values(campaign_id=campaign_id, status=status)
                .on_conflict_do_nothing()
            )
            return True, None
        if row.status == status:
            return False, status
        previous = row.status
        row.status = status
        row.updated_at = func.now()
        return True, previous
