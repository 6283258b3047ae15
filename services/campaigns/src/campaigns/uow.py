"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bus.uow import TransactionScope
from campaigns.models import CONSUMER, inbox
from campaigns.repository import (
    AttemptRepository,
    CallerIdRepository,
    CampaignNumberRepository,
    CampaignRepository,
    ChunkRepository,
    DispatchStateRepository,
    DoNotCallRepository,
    FollowUpRepository,
    PhoneNumberRepository,
    RecipientRepository,
)
from contracts.base import Message
from contracts.topics import CAMPAIGN_EVENTS, TELEPHONY_COMMANDS


class UnitOfWork(TransactionScope):
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    campaigns: CampaignRepository
    chunks: ChunkRepository
    recipients: RecipientRepository
    attempts: AttemptRepository
    numbers: CampaignNumberRepository
    do_not_call: DoNotCallRepository
    dispatch: DispatchStateRepository
    phone_numbers: PhoneNumberRepository
    caller_ids: CallerIdRepository
    follow_ups: FollowUpRepository
    events_topic = CAMPAIGN_EVENTS
    inbox_table = inbox
    consumer = CONSUMER

    def _open(self, session: AsyncSession) -> None:
        self.campaigns = CampaignRepository(session)
        self.chunks = ChunkRepository(session)
        self.recipients = RecipientRepository(session)
        self.attempts = AttemptRepository(session)
        self.numbers = CampaignNumberRepository(session)
        self.do_not_call = DoNotCallRepository(session)
        self.dispatch = DispatchStateRepository(session)
        self.phone_numbers = PhoneNumberRepository(session)
        self.caller_ids = CallerIdRepository(session)
        self.follow_ups = FollowUpRepository(session)

    async def send_command(self, command: Message, key: str | None) -> None:
        """Queue a telephony command (PlaceCall); sent after this transaction commits."""
        await self._bus.publish_later(self.session, TELEPHONY_COMMANDS, command, key=key)
