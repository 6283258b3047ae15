"""Every query the gateway makes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import Agent, KnowledgeDocument, Operation, Tool, Upload

R = TypeVar("R", Tool, KnowledgeDocument, Agent)

OPERATIONS_CHANNEL = "gateway_operations"


class ReadModels:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, model: type[R], values: dict[str, Any], event_at: datetime) -> None:
        """Insert or update unless a newer event already shaped the row (projection is order-insensitive)."""
        pk = model.__mapper__.primary_key[0].name
        stmt = insert(model).values(**values, last_event_at=event_at, deleted=False)
        stmt = stmt.on_conflict_do_update(
            index_elements=[pk],
            set_={**{k: stmt.excluded[k] for k in values if k != pk}, "last_event_at": event_at},
            where=model.__table__.c.last_event_at < event_at,
        )
        await self.session.execute(stmt)

    async def tombstone(self, model: type[R], resource_id: str, event_at: datetime) -> None:
        pk = model.__mapper__.primary_key[0]
        await self.session.execute(
            update(model)
            .where(pk == resource_id, model.__table__.c.last_event_at <= event_at)
            .values(deleted=True, last_event_at=event_at)
        )

    async def get(self, model: type[R], resource_id: str) -> R | None:
        pk = model.__mapper__.primary_key[0]
        row = await self.session.scalar(select(model).where(pk == resource_id, model.deleted.is_(False)))
        return row

    async def page(
        self, model: type[R], *, after_position: int | None, page_size: int
    ) -> tuple[list[R], bool]:
        """Newest first; returns (rows, has_more)."""
        query = (
            select(model).where(model.deleted.is_(False)).order_by(model.position.desc()).limit(page_size + 1)
        )
        if after_position is not None:
            query = query.where(model.position < after_position)
        rows = list((await self.session.scalars(query)).all())
        return rows[:page_size], len(rows) > page_size

    async def existing_ids(self, model: type[R], ids: list[str]) -> set[str]:
        pk = model.__mapper__.primary_key[0]
        rows = await self.session.scalars(select(pk).where(pk.in_(ids), model.deleted.is_(False)))
        return set(rows.all())


class Operations:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_pending(self, operation_id: str, command_type: str) -> None:
        self.session.add(Operation(operation_id=operation_id, command_type=command_type, status="pending"))

    async def complete(self, operation_id: str, status_code: int, response: dict[str, Any]) -> None:
        """Record the outcome and wake every gateway replica waiting on it (delivered at commit)."""
        await self.session.execute(
            update(Operation)
            .where(Operation.operation_id == operation_id, Operation.status == "pending")
            .values(
                status="succeeded" if status_code < 400 else "failed",
                status_code=status_code,
                response=response,
                updated_at=func.now(),
            )
        )
        await self.session.execute(
            text("SELECT pg_notify(:channel, :op)"), {"channel": OPERATIONS_CHANNEL, "op": operation_id}
        )

    async def get(self, operation_id: str) -> Operation | None:
        return await self.session.get(Operation, operation_id, populate_existing=True)


class Uploads:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, upload: Upload) -> None:
        self.session.add(upload)

    async def get(self, upload_id: str) -> Upload | None:
        return await self.session.get(Upload, upload_id)
