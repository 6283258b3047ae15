"""Every query of the tool-webhooks service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from tool_webhooks.models import (
    CONSUMER,
    Conversation,
    CustomerSession,
    EmailInvocation,
    EmailTemplate,
    KeptDelivery,
    ToolTokenState,
    WebhookRegistration,
    inbox,
)


def _qualified(model: type[Any]) -> str:
    table = model.__table__
    return f"{table.schema}.{table.name}"


class RegistrationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        webhook_id: str,
        webhook_url: str,
        encrypt: Callable[[int], str],
        command_message_id: str | None,
    ) -> WebhookRegistration:
        """A new registration; `encrypt(row id)` gives its secret's ciphertext, bound to the row."""
        row_id = await self.session.scalar(
            select(func.nextval(func.pg_get_serial_sequence(_qualified(WebhookRegistration), "id")))
        )
        assert isinstance(row_id, int)
        row = WebhookRegistration(
            id=row_id,
            webhook_id=webhook_id,
            webhook_url=webhook_url,
            secret_encrypted=encrypt(row_id),
            command_message_id=command_message_id,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def latest(self) -> WebhookRegistration | None:
        result = await self.session.scalars(
            select(WebhookRegistration).order_by(WebhookRegistration.id.desc()).limit(1)
        )
        return result.first()


class KeptDeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        reason: str,
        size_bytes: int,
        sha256: str,
        body: bytes,
        truncated: bool,
        correlation_id: str | None,
    ) -> int | None:
        """The new row's id, or None when a delivery with this `sha256` is already kept."""
        statement = (
            insert(KeptDelivery)
            .values(
                reason=reason,
                size_bytes=size_bytes,
                sha256=sha256,
                body=body,
                truncated=truncated,
                correlation_id=correlation_id,
            )
            .on_conflict_do_nothing(index_elements=[KeptDelivery.sha256])
            .returning(KeptDelivery.id)
        )
        result: int | None = (await self.session.execute(statement)).scalar_one_or_none()
        return result

    async def prune(self, received_before: datetime, limit: int) -> int:
        return await _delete_oldest(
            self.session, KeptDelivery.id, KeptDelivery.received_at, received_before, limit
        )


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen(self, message_id: str, consumer: str = CONSUMER) -> bool:
        """True when `consumer` already handled `message_id` (a committed claim)."""
        result = await self.session.execute(
            select(inbox.c.message_id).where(inbox.c.consumer == consumer, inbox.c.message_id == message_id)
        )
        return result.first() is not None


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(
        self,
        conversation_id: str,
        *,
        agent_id: str | None,
        ecommerce_platform: str | None,
        ecommerce_credentials_encrypted: str | None,
        sender_email: str | None,
        call: dict[str, Any] | None = None,
    ) -> None:
        values = {
            "agent_id": agent_id,
            "ecommerce_platform": ecommerce_platform,
            "ecommerce_credentials_encrypted": ecommerce_credentials_encrypted,
            "sender_email": sender_email,
            "call": call,
        }
        statement = insert(Conversation).values(conversation_id=conversation_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[Conversation.conversation_id], set_=values)
        )

    async def get(self, conversation_id: str) -> Conversation | None:
        return await self.session.get(Conversation, conversation_id)

    async def prune(self, updated_before: datetime, limit: int) -> list[str]:
        """Delete up to `limit` conversations untouched since the cutoff; returns their ids."""
        oldest = (
            select(Conversation.conversation_id).where(Conversation.updated_at < updated_before).limit(limit)
        )
        result = await self.session.execute(
            delete(Conversation)
            .where(Conversation.conversation_id.in_(oldest))
            .returning(Conversation.conversation_id),
            execution_options={"synchronize_session": False},
        )
        return list(result.scalars().all())


class CustomerSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(
        self,
        conversation_id: str,
        *,
        name: str | None,
        email: str | None,
        phone: str | None,
        sender_email: str | None,
    ) -> None:
        values: dict[str, Any] = {"name": name, "email": email, "phone": phone}
        statement = insert(CustomerSession).values(
            conversation_id=conversation_id, sender_email=sender_email, **values
        )
        if sender_email is not None:  # a session stored later without a sender keeps the known one
            values["sender_email"] = sender_email
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[CustomerSession.conversation_id], set_=values)
        )

    async def delete(self, conversation_id: str) -> None:
        await self.session.execute(
            delete(CustomerSession).where(CustomerSession.conversation_id == conversation_id)
        )

    async def get(self, conversation_id: str) -> CustomerSession | None:
        return await self.session.get(CustomerSession, conversation_id)

    async def prune(self, updated_before: datetime, limit: int) -> int:
        return await _delete_oldest(
            self.session, CustomerSession.conversation_id, CustomerSession.updated_at, updated_before, limit
        )


class EmailTemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(
        self, template_id: str, subject_template: str, body_template: str, parameters: list[dict[str, Any]]
    ) -> None:
        values = {
            "subject_template": subject_template,
            "body_template": body_template,
            "parameters": parameters,
        }
        statement = insert(EmailTemplate).values(template_id=template_id, **values)
        await self.session.execute(
            statement.on_conflict_do_update(index_elements=[EmailTemplate.template_id], set_=values)
        )

    async def delete(self, template_id: str) -> None:
        await self.session.execute(delete(EmailTemplate).where(EmailTemplate.template_id == template_id))

    async def get(self, template_id: str) -> EmailTemplate | None:
        return await self.session.get(EmailTemplate, template_id)


class EmailInvocationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def start(self, key_hash: str, first_seen: datetime, message_id: str, cutoff: datetime) -> bool:
        """True when this is a new invocation: no row for the key, or its window (first_seen >= cutoff)
        has passed. Atomic: concurrent identical calls wait on the row and only one gets True."""
        statement = insert(EmailInvocation).values(
            key_hash=key_hash, first_seen=first_seen, message_id=message_id
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[EmailInvocation.key_hash],
            set_={"first_seen": first_seen, "message_id": message_id},
            where=EmailInvocation.first_seen < cutoff,
        ).returning(EmailInvocation.key_hash)
        result = await self.session.execute(upsert)
        return result.first() is not None

    async def prune(self, first_seen_before: datetime, limit: int) -> int:
        return await _delete_oldest(
            self.session, EmailInvocation.key_hash, EmailInvocation.first_seen, first_seen_before, limit
        )


async def _delete_oldest(
    session: AsyncSession,
    key: InstrumentedAttribute[Any],
    stamp: InstrumentedAttribute[Any],
    before: datetime,
    limit: int,
) -> int:
    """Delete up to `limit` rows whose `stamp` is before the cutoff; short batches keep the
    transactions on tables that tool calls read short."""
    oldest = select(key).where(stamp < before).limit(limit)
    result = await session.execute(
        delete(key.class_).where(key.in_(oldest)), execution_options={"synchronize_session": False}
    )
    return int(cast(CursorResult[Any], result).rowcount)


class ToolTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def issued(
        self, tool_id: str, token_id: str, route: str, generation: int, previous_valid_until: datetime | None
    ) -> None:
        """Record a tool's current token generation; never goes back to an older one (events of one
        tool may arrive out of order) and never clears a deletion."""
        values = {
            "token_id": token_id,
            "route": route,
            "generation": generation,
            "previous_valid_until": previous_valid_until,
        }
        statement = insert(ToolTokenState).values(tool_id=tool_id, **values)
        table = ToolTokenState.__table__
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[ToolTokenState.tool_id],
                set_=values,
                # a new lineage: a tool from before tokens were recorded, rotated for the first time
                where=table.c.generation.is_(None)
                | (table.c.generation < generation)
                | (table.c.token_id != token_id),
            )
        )

    async def deleted(self, tool_id: str, at: datetime) -> None:
        """The tool is gone: none of its tokens opens anything any more (idempotent)."""
        statement = insert(ToolTokenState).values(tool_id=tool_id, deleted_at=at)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[ToolTokenState.tool_id],
                set_={"deleted_at": func.coalesce(ToolTokenState.deleted_at, statement.excluded.deleted_at)},
            )
        )

    async def find(self, token_id: str, route: str) -> ToolTokenState | None:
        result = await self.session.scalars(
            select(ToolTokenState).where(ToolTokenState.token_id == token_id, ToolTokenState.route == route)
        )
        return result.first()
