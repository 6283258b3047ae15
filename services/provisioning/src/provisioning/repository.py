"""Every query of the provisioning service."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.provisioning import EmailTemplateRecord
from provisioning.models import EmailTemplate, KnowledgeDocument, ToolToken


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
