"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bus import inbox as bus_inbox
from bus.runtime import Bus
from campaigns.models import CONSUMER, inbox
from campaigns.repository import (
    AttemptRepository,
    CampaignRepository,
    ChunkRepository,
    DispatchStateRepository,
    DoNotCallRepository,
    PhoneNumberRepository,
    RecipientRepository,
)
from contracts.base import Message
from contracts.topics import CAMPAIGN_EVENTS, TELEPHONY_COMMANDS


class UnitOfWork:
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    campaigns: CampaignRepository
    chunks: ChunkRepository
    recipients: RecipientRepository
    attempts: AttemptRepository
    do_not_call: DoNotCallRepository
    dispatch: DispatchStateRepository
    phone_numbers: PhoneNumberRepository
    session: AsyncSession

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], bus: Bus) -> None:
        self._sessionmaker = sessionmaker
        self._bus = bus

    async def __aenter__(self) -> Self:
        self.session = self._sessionmaker()
        await self.session.begin()
        self.campaigns = CampaignRepository(self.session)
        self.chunks = ChunkRepository(self.session)
        self.recipients = RecipientRepository(self.session)
        self.attempts = AttemptRepository(self.session)
        self.do_not_call = DoNotCallRepository(self.session)
        self.dispatch = DispatchStateRepository(self.session)
        self.phone_numbers = PhoneNumberRepository(self.session)
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

    async def claim(self, message_id: str) -> bool:
        """True the first time this service handles `message_id` (in this transaction)."""
        return await bus_inbox.claim(self.session, inbox, CONSUMER, message_id)

    async def publish(self, event: Message, key: str | None) -> None:
        """Queue `event` on the campaign events topic; sent after this transaction commits."""
        await self._bus.publish_later(self.session, CAMPAIGN_EVENTS, event, key=key)

    async def send_command(self, command: Message, key: str | None) -> None:
        """Queue a telephony command (PlaceCall); sent after this transaction commits."""
        await self._bus.publish_later(self.session, TELEPHONY_COMMANDS, command, key=key)
