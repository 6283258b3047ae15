"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bus.uow import TransactionScope
from contracts.topics import WEBHOOK_EVENTS
from tool_webhooks.models import CONSUMER
from tool_webhooks.models import inbox as inbox_rows
from tool_webhooks.repository import (
    ConversationRepository,
    CustomerSessionRepository,
    EmailInvocationRepository,
    EmailTemplateRepository,
    InboxRepository,
    KeptDeliveryRepository,
    RegistrationRepository,
    ToolTokenRepository,
)


class UnitOfWork(TransactionScope):
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    registrations: RegistrationRepository
    inbox: InboxRepository
    conversations: ConversationRepository
    sessions: CustomerSessionRepository
    templates: EmailTemplateRepository
    invocations: EmailInvocationRepository
    kept: KeptDeliveryRepository
    tool_tokens: ToolTokenRepository
    events_topic = WEBHOOK_EVENTS
    inbox_table = inbox_rows
    consumer = CONSUMER

    def _open(self, session: AsyncSession) -> None:
        self.registrations = RegistrationRepository(session)
        self.inbox = InboxRepository(session)
        self.conversations = ConversationRepository(session)
        self.sessions = CustomerSessionRepository(session)
        self.templates = EmailTemplateRepository(session)
        self.invocations = EmailInvocationRepository(session)
        self.kept = KeptDeliveryRepository(session)
        self.tool_tokens = ToolTokenRepository(session)
