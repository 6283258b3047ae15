"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bus.ledger import CommandLedger
from bus.uow import TransactionScope
from contracts.topics import TELEPHONY_EVENTS
from telephony.models import CONSUMER, inbox, upstream_commands
from telephony.repository import (
    CallRepository,
    CustomerSessionRepository,
    EarlyPostCallRepository,
    PhoneNumberRepository,
)


class UnitOfWork(TransactionScope):
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    commands: CommandLedger
    phone_numbers: PhoneNumberRepository
    calls: CallRepository
    sessions: CustomerSessionRepository
    early_post_calls: EarlyPostCallRepository
    events_topic = TELEPHONY_EVENTS
    inbox_table = inbox
    consumer = CONSUMER

    def _open(self, session: AsyncSession) -> None:
        self.commands = CommandLedger(session, upstream_commands)
        self.phone_numbers = PhoneNumberRepository(session)
        self.calls = CallRepository(session)
        self.sessions = CustomerSessionRepository(session)
        self.early_post_calls = EarlyPostCallRepository(session)
