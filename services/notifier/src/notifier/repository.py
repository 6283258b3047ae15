"""Every query of the notifier service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.notifier import SendEmail
from notifier.models import Delivery, DeliveryStatus


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
