"""Every query of the tool-webhooks service."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tool_webhooks.models import CONSUMER, WebhookRegistration, inbox


class RegistrationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, webhook_id: str, webhook_url: str, secret_encrypted: str, command_message_id: str | None
    ) -> WebhookRegistration:
        row = WebhookRegistration(
            webhook_id=webhook_id,
            webhook_url=webhook_url,
            secret_encrypted=secret_encrypted,
            command_message_id=command_message_id,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def latest(self) -> WebhookRegistration | None:
        result = await self.session.scalars(
            select(WebhookRegistration).order_by(WebhookRegistration.id.desc()).limit(1)
        )
        return result.first()


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen(self, message_id: str, consumer: str = CONSUMER) -> bool:
        """True when `consumer` already handled `message_id` (a committed claim)."""
        result = await self.session.execute(
            select(inbox.c.message_id).where(inbox.c.consumer == consumer, inbox.c.message_id == message_id)
        )
        return result.first() is not None
