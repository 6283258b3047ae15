"""Every query of the telephony service."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.telephony import FINAL_CALL_STATUSES, CustomerInfo, PhoneNumberRecord
from contracts.webhooks import PostCallWebhookReceived
from telephony.models import Call, CustomerSession, EarlyPostCall, PhoneNumber


class PhoneNumberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, record: PhoneNumberRecord) -> None:
        values = record.model_dump()
        stmt = insert(PhoneNumber).values(**values)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[PhoneNumber.phone_number_id],
                set_={k: v for k, v in values.items() if k != "phone_number_id"},
            )
        )

    async def get(self, phone_number_id: str) -> PhoneNumber | None:
        return await self.session.get(PhoneNumber, phone_number_id, populate_existing=True)

    async def remove(self, phone_number_id: str) -> None:
        await self.session.execute(delete(PhoneNumber).where(PhoneNumber.phone_number_id == phone_number_id))


def _lock_key(conversation_id: str) -> str:
    return f"telephony:call:{conversation_id}"


@functools.lru_cache(maxsize=16)
def _add_locked(columns: tuple[str, ...]) -> Any:
    """`CallRepository.add_locked` for `columns`, built once (building it per dial, with a bound
    value per column, cost more CPU than its round trip); parameters `lock_key` and `v_<column>`."""
    table = cast(Table, Call.__table__)
    # A scalar subquery, not EXISTS: PostgreSQL drops an EXISTS subquery's SELECT list unrun.
    locked = (
        select(func.pg_advisory_xact_lock(func.hashtext(bindparam("lock_key", type_=String))))
        .scalar_subquery()
        .is_not(None)
    )
    row = select(*[bindparam(f"v_{name}", type_=table.c[name].type).label(name) for name in columns])
    return insert(table).from_select(list(columns), row.where(locked)).on_conflict_do_nothing()


class CallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_locked(self, **values: Any) -> None:
        """Insert the call unless it exists, having taken its lock (`lock`), in one statement: the
        lock is the INSERT's one-time filter, run before any row is written. Only what comes after
        this statement in the transaction is read under the lock (the statement's own snapshot
        predates it), and it reads nothing: a webhook kept before the lock was granted is found
        by the next statement (`EarlyPostCallRepository.take`)."""
        statement = _add_locked(tuple(values))
        await self.session.execute(
            statement,
            {"lock_key": _lock_key(values["conversation_id"]), **{f"v_{k}": v for k, v in values.items()}},
        )

    async def lock(self, conversation_id: str) -> None:
        """Serialise, until the transaction ends, storing a call and recording its post-call
        webhook: whichever commits second sees the other (a row lock cannot, the row may not exist)."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": _lock_key(conversation_id)}
        )

    async def get_for_update(self, conversation_id: str) -> Call | None:
        return await self.session.scalar(
            select(Call).where(Call.conversation_id == conversation_id).with_for_update()
        )

    async def due_for_reconciliation(self, placed_before: datetime, limit: int) -> Sequence[Call]:
        """Non-final calls placed before `placed_before`, locked; rows another replica holds are skipped."""
        result = await self.session.scalars(
            select(Call)
            .where(Call.status.not_in(FINAL_CALL_STATUSES), Call.placed_at < placed_before)
            .order_by(Call.placed_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return result.all()

    async def set_status(self, conversation_id: str, **values: Any) -> None:
        await self.session.execute(
            update(Call).where(Call.conversation_id == conversation_id).values(**values)
        )


class EarlyPostCallRepository:
    """Post-call webhooks that came before their call was stored."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def keep(self, event: PostCallWebhookReceived, received_at: datetime) -> None:
        await self.session.execute(
            insert(EarlyPostCall)
            .values(
                message_id=event.message_id,
                conversation_id=event.conversation_id,
                event_json=event.model_dump_json(),
                received_at=received_at,
            )
            .on_conflict_do_nothing()
        )

    async def take(self, conversation_id: str) -> list[PostCallWebhookReceived]:
        """The conversation's kept webhooks, oldest event first, removed."""
        rows = await self.session.scalars(
            delete(EarlyPostCall)
            .where(EarlyPostCall.conversation_id == conversation_id)
            .returning(EarlyPostCall.event_json)
        )
        events = [PostCallWebhookReceived.model_validate_json(row) for row in rows]
        return sorted(events, key=lambda e: e.event_timestamp)

    async def forget_received_before(self, before: datetime) -> int:
        result = await self.session.execute(
            delete(EarlyPostCall)
            .where(EarlyPostCall.received_at < before)
            .returning(EarlyPostCall.message_id)
        )
        return len(result.all())


class CustomerSessionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, conversation_id: str, info: CustomerInfo, sender_email: str | None) -> None:
        values = {"name": info.name, "email": info.email, "phone": info.phone, "sender_email": sender_email}
        stmt = insert(CustomerSession).values(conversation_id=conversation_id, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=[CustomerSession.conversation_id], set_=values)
        )

    async def get(self, conversation_id: str) -> CustomerSession | None:
        return await self.session.get(CustomerSession, conversation_id, populate_existing=True)

    async def remove(self, conversation_id: str) -> bool:
        result = await self.session.execute(
            delete(CustomerSession)
            .where(CustomerSession.conversation_id == conversation_id)
            .returning(CustomerSession.conversation_id)
        )
        return result.first() is not None
