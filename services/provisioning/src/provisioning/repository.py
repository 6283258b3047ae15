"""Every query of the provisioning service."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.provisioning import EmailTemplateRecord
from provisioning.models import Attempt, AttemptStatus, EmailTemplate, KnowledgeDocument, ToolToken


class AttemptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(self, message_id: str, command_type: str) -> tuple[Attempt, bool]:
        """Insert a `started` row unless one exists; returns (row, created_now)."""
        result = await self.session.execute(
            insert(Attempt)
            .values(message_id=message_id, command_type=command_type, status=AttemptStatus.STARTED)
            .on_conflict_do_nothing()
            .returning(Attempt.message_id)
        )
        created = result.first() is not None
        attempt = await self.session.get(Attempt, message_id, populate_existing=True)
        assert attempt is not None
        return attempt, created

    async def finish(self, message_id: str, status: str, resource_id: str | None, at: datetime) -> None:
        await self.session.execute(
            update(Attempt)
            .where(Attempt.message_id == message_id)
            .values(status=status, resource_id=resource_id, finished_at=at)
        )

    async def get(self, message_id: str) -> Attempt | None:
        return await self.session.get(Attempt, message_id, populate_existing=True)


class KnowledgeDocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, document_id: str, name: str, type_: str) -> None:
        stmt = insert(KnowledgeDocument).values(id=document_id, name=name, type=type_)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[KnowledgeDocument.id], set_={"name": name, "type": type_}
            )
        )

    async def get_many(self, ids: Iterable[str]) -> dict[str, KnowledgeDocument]:
        wanted = list(ids)
        if not wanted:
            return {}
        rows = await self.session.scalars(select(KnowledgeDocument).where(KnowledgeDocument.id.in_(wanted)))
        return {row.id: row for row in rows}

    async def remove(self, document_id: str) -> None:
        await self.session.execute(delete(KnowledgeDocument).where(KnowledgeDocument.id == document_id))


class EmailTemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, record: EmailTemplateRecord, created_at: datetime) -> None:
        """Insert; a template of the same name committed meanwhile makes this fail (IntegrityError)."""
        self.session.add(
            EmailTemplate(
                template_id=record.template_id,
                description=record.description,
                subject_template=record.subject_template,
                body_template=record.body_template,
                parameters=[p.model_dump() for p in record.parameters],
                tool_id=record.tool_id,
                created_at=created_at,
            )
        )
        await self.session.flush()

    async def get(self, template_id: str) -> EmailTemplate | None:
        return await self.session.get(EmailTemplate, template_id, populate_existing=True)

    async def remove(self, template_id: str) -> None:
        await self.session.execute(delete(EmailTemplate).where(EmailTemplate.template_id == template_id))


class ToolTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def put(self, tool_id: str, token_id: str, route: str, generation: int, secret_id: str) -> None:
        values = {"token_id": token_id, "route": route, "generation": generation, "secret_id": secret_id}
        stmt = insert(ToolToken).values(tool_id=tool_id, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=[ToolToken.tool_id], set_=values)
        )

    async def get(self, tool_id: str) -> ToolToken | None:
        return await self.session.get(ToolToken, tool_id, populate_existing=True)

    async def remove(self, tool_id: str) -> None:
        await self.session.execute(delete(ToolToken).where(ToolToken.tool_id == tool_id))
