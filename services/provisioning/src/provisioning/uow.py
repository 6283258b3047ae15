"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bus.uow import TransactionScope
from contracts.topics import PROVISIONING_EVENTS
from provisioning.models import CONSUMER, inbox
from provisioning.repository import (
    AttemptRepository,
    EmailTemplateRepository,
    KnowledgeDocumentRepository,
    ToolTokenRepository,
)


class UnitOfWork(TransactionScope):
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    attempts: AttemptRepository
    documents: KnowledgeDocumentRepository
    email_templates: EmailTemplateRepository
    tool_tokens: ToolTokenRepository
    events_topic = PROVISIONING_EVENTS
    inbox_table = inbox
    consumer = CONSUMER

    def _open(self, session: AsyncSession) -> None:
        self.attempts = AttemptRepository(session)
        self.documents = KnowledgeDocumentRepository(session)
        self.email_templates = EmailTemplateRepository(session)
        self.tool_tokens = ToolTokenRepository(session)
