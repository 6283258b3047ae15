"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bus import inbox as bus_inbox
from bus.runtime import Bus
from contracts.base import Message
from contracts.topics import WEBHOOK_EVENTS
from tool_webhooks.models import CONSUMER, inbox
from tool_webhooks.repository import (
    ConversationRepository,
    CustomerSessionRepository,
    EmailInvocationRepository,
    EmailTemplateRepository,
    InboxRepository,
    RegistrationRepository,
)


class UnitOfWork:
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    registrations: RegistrationRepository
    inbox: InboxRepository
    conversations: ConversationRepository
    sessions: CustomerSessionRepository
    templates: EmailTemplateRepository
    invocations: EmailInvocationRepository
    session: AsyncSession

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self._sessionmaker = sessionmaker
        self._bus = bus

    async def __aenter__(self) -> Self:
        self.session = self._sessionmaker()
        await self.session.begin()
        self.registrations = RegistrationRepository(self.session)
        self.inbox = InboxRepository(self.session)
        self.conversations = ConversationRepository(self.session)
        self.sessions = CustomerSessionRepository(self.session)
        self.templates = EmailTemplateRepository(self.session)
        self.invocations = EmailInvocationRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.session.commit()
            else:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def claim(self, message_id: str, consumer: str = CONSUMER) -> bool:
        """True the first time `consumer` handles `message_id` (in this transaction)."""
        return await bus_inbox.claim(self.session, inbox, consumer, message_id)

    async def publish(self, event: Message, key: str | None, *, topic: str = WEBHOOK_EVENTS) -> None:
        """Queue `event` on `topic` (default: webhooks events); sent after this transaction commits."""
        await self._bus.publish_later(self.session, topic, event, key=key)
