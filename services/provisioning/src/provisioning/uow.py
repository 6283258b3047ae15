"""The transaction scope: services use it and never commit themselves."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bus.ledger import CommandLedger
from bus.uow import TransactionScope
from contracts.topics import PROVISIONING_EVENTS
from provisioning.models import CONSUMER, inbox, upstream_commands
from provisioning.repository import (
    EmailTemplateRepository,
    KnowledgeDocumentRepository,
    ToolTokenRepository,
)


class UnitOfWork(TransactionScope):
    """`async with uow:` opens a session and a transaction; commits on success, rolls back on error."""

    commands: CommandLedger
    documents: KnowledgeDocumentRepository
    email_templates: EmailTemplateRepository
    tool_tokens: ToolTokenRepository
    events_topic = PROVISIONING_EVENTS
    inbox_table = inbox
    consumer = CONSUMER

    def _open(self, session: AsyncSession) -> None:
        self.commands = CommandLedger(session, upstream_commands)
        self.documents = KnowledgeDocumentRepository(session)
        self.email_templates = EmailTemplateRepository(session)
        self.tool_tokens = ToolTokenRepository(session)
