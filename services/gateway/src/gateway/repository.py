"""Every query the gateway makes."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from pydantic_core import to_json
from sqlalchemy import (
    CursorResult,
    DateTime,
    Float,
    String,
    Table,
    Text,
    any_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.dml import Delete

from bus import batch
from bus.db import copy_rows
from contracts.campaigns import FINAL_CAMPAIGN_STATUSES
from contracts.campaigns import CampaignRecipient as SubmittedRecipient
from gateway.models import (
    Agent,
    ApiKey,
    Call,
    CallAnalysis,
    CallTranscriptPart,
    Campaign,
    CampaignChange,
    CampaignRecipient,
    CustomerSession,
    DoNotCall,
    Email,
    EmailTemplate,
    IdempotencyKey,
    KnowledgeDocument,
    Operation,
    PhoneNumber,
    RateBucket,
    Tool,
    Upload,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryAttempt,
)

R = TypeVar(
    "R",
    Tool,
    KnowledgeDocument,
    Agent,
    PhoneNumber,
    Call,
    CustomerSession,
    EmailTemplate,
    Email,
    Campaign,
    DoNotCall,
    Webhook,
)

OPERATIONS_CHANNEL = "gateway_operations"
# Notified (payload: the campaign id) when campaign changes commit; live progress streams listen.
CHANGES_CHANNEL = "gateway_campaign_changes"
# Serialises appends to the change log (any constant bigint, unique to this purpose).
_CHANGES_LOCK = 0x5342_4348_414E_4745  # "SBCHANGE"


def _append_changes() -> Any:
    """The change log's append (`Changes._write`), built once: one statement, one round trip.
    The lock is the SELECT's one-time filter (an InitPlan, run before its first row, so before
    any id is handed out), and the notifications come from RETURNING (PostgreSQL delivers one per
    campaign: identical ones in a transaction are folded). The rows are bound as three arrays: a
    VALUES list of rows has no cache key in SQLAlchemy, so it was compiled again for every
    append (bench/README, issue 17)."""
    rows = (
        func.unnest(
            bindparam("campaign_ids", type_=ARRAY(String)),
            bindparam("kinds", type_=ARRAY(String)),
            bindparam("payloads", type_=ARRAY(Text)),
        )
        .table_valued("campaign_id", "kind", "payload")
        .render_derived(name="change")
    )
    # A scalar subquery, not EXISTS: PostgreSQL drops an EXISTS subquery's SELECT list unrun.
    locked = select(func.pg_advisory_xact_lock(_CHANGES_LOCK)).scalar_subquery().is_not(None)
    # The table, not the mapped class: given parameters, an ORM insert would be a bulk insert.
    table = cast(Table, CampaignChange.__table__)
    return (
        insert(table)
        .from_select(
            ["campaign_id", "kind", "payload"],
            select(rows.c.campaign_id, rows.c.kind, sql_cast(rows.c.payload, JSONB)).where(locked),
        )
        .returning(func.pg_notify(CHANGES_CHANNEL, table.c.campaign_id))
    )


_APPEND_CHANGES = _append_changes()


# The projection's per-event writes, built once per table and set of columns. Built per event,
# SQLAlchemy spent ~0.5 ms constructing each statement and computing its cache key (~8 % of the
# gateway's CPU in a campaign: three recipient updates a call, bench/README, issue 17). The
# column sets come from the projection's code, so the caches stay small.


def _binds(table: Table, columns: tuple[str, ...]) -> dict[str, Any]:
    return {name: bindparam(name, type_=table.c[name].type) for name in columns}


@functools.lru_cache(maxsize=256)
def _upsert_if_newer(table: Table, columns: tuple[str, ...], conflict: tuple[str, ...]) -> Any:
    """Insert `columns`, or update them on a `conflict` unless a newer event already shaped the
    row (`last_event_at`; never set counts as older); RETURNING 1 when written. Parameters: the
    columns and `last_event_at`. A table with tombstones (`deleted`) gets its row back."""
    revive = {"deleted": False} if "deleted" in table.c else {}
    stmt = insert(table).values({**_binds(table, (*columns, "last_event_at")), **revive})
    new = stmt.excluded.last_event_at
    return stmt.on_conflict_do_update(
        index_elements=list(conflict),
        set_={
            **{name: stmt.excluded[name] for name in columns if name not in conflict},
            "last_event_at": new,
            **revive,
        },
        where=(table.c.last_event_at.is_(None)) | (table.c.last_event_at < new),
    ).returning(literal_column("1"))


@functools.lru_cache(maxsize=256)
def _read_model_update(table: Table, columns: tuple[str, ...]) -> Any:
    """`ReadModels.update_if_newer` for `columns`; parameters: the columns, `last_event_at` and
    `_resource_id` (the row's primary key)."""
    pk = next(iter(table.primary_key.columns))
    event_at = bindparam("last_event_at", type_=table.c.last_event_at.type)
    return (
        update(table)
        .where(pk == bindparam("_resource_id", type_=pk.type), table.c.last_event_at <= event_at)
        .values({**_binds(table, columns), "last_event_at": event_at})
    )


async def _delete_counted(session: AsyncSession, statement: Delete) -> int:
    # Core-style delete: no ORM session synchronisation needed (nothing pruned is loaded).
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    return int(cast(CursorResult[Any], result).rowcount)


class ReadModels:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, model: type[R], values: dict[str, Any], event_at: datetime) -> bool:
        """Insert or update unless a newer event already shaped the row (projection is order-insensitive).
        True when the row was written.

        An event newer than the row's delete brings it back: ids a client chooses (a session's
        conversation id, a do-not-call number, a template's name) are created again after a delete.
        """
        table = cast(Table, model.__table__)
        pk = next(iter(table.primary_key.columns)).name
        statement = _upsert_if_newer(table, tuple(values), (pk,))
        result = await self.session.execute(statement, {**values, "last_event_at": event_at})
        return result.first() is not None

    async def add_do_not_call(self, values: dict[str, Any], event_at: datetime) -> bool:
        """`upsert` of a do-not-call entry, by the list's rule: a number listed already keeps the
        date, `source` and conversation it first joined with, and its reason unless the event gives
        a new one (None never erases it); one removed meanwhile (a tombstone) is a new entry. The
        campaigns service applies the rule to its own list and sends the entry as kept: this holds
        for events that predate it, and replays. True when the row was written."""
        table = DoNotCall.__table__
        stmt = insert(DoNotCall).values(**values, last_event_at=event_at, deleted=False)
        new = stmt.excluded

        def first(column: str) -> Any:
            return case((table.c.deleted, new[column]), else_=table.c[column])

        upsert: Any = stmt.on_conflict_do_update(
            index_elements=[DoNotCall.phone_number],
            set_={
                "reason": case(
                    (table.c.deleted, new.reason), else_=func.coalesce(new.reason, table.c.reason)
                ),
                "added_at_unix": first("added_at_unix"),
                "source": first("source"),
                "conversation_id": first("conversation_id"),
                "last_event_at": event_at,
                "deleted": False,
            },
            where=table.c.last_event_at < event_at,
        ).returning(literal_column("1"))
        return (await self.session.execute(upsert)).first() is not None

    async def update_if_newer(
        self, model: type[R], resource_id: str, values: dict[str, Any], event_at: datetime
    ) -> None:
        table = cast(Table, model.__table__)
        statement = _read_model_update(table, tuple(values))
        await self.session.execute(
            statement, {**values, "last_event_at": event_at, "_resource_id": resource_id}
        )

    async def tombstone(self, model: type[R], resource_id: str, event_at: datetime) -> None:
        pk = model.__mapper__.primary_key[0]
        await self.session.execute(
            update(model)
            .where(pk == resource_id, model.__table__.c.last_event_at <= event_at)
            .values(deleted=True, last_event_at=event_at)
        )

    async def get(self, model: type[R], resource_id: str) -> R | None:
        if "\x00" in resource_id:  # no stored id holds NUL, and PostgreSQL refuses it in a query
            return None
        pk = model.__mapper__.primary_key[0]
        row = await self.session.scalar(select(model).where(pk == resource_id, model.deleted.is_(False)))
        return row

    async def page(
        self,
        model: type[R],
        *,
        after_position: int | None,
        page_size: int,
        filters: dict[str, Any] | None = None,
    ) -> tuple[list[R], bool]:
        """Newest first; returns (rows, has_more). `filters` are column equality matches."""
        query = (
            select(model).where(model.deleted.is_(False)).order_by(model.position.desc()).limit(page_size + 1)
        )
        for column, value in (filters or {}).items():
            query = query.where(model.__table__.c[column] == value)
        if after_position is not None:
            query = query.where(model.position < after_position)
        rows = list((await self.session.scalars(query)).all())
        return rows[:page_size], len(rows) > page_size

    async def existing_ids(self, model: type[R], ids: list[str]) -> set[str]:
        pk = model.__mapper__.primary_key[0]
        rows = await self.session.scalars(select(pk).where(pk.in_(ids), model.deleted.is_(False)))
        return set(rows.all())

    async def do_not_call(self, numbers: list[str]) -> dict[str, str | None]:
        """The listed numbers among `numbers` (E.164), with the reason each was listed."""
        if not numbers:
            return {}
        # = ANY(one array parameter): an IN list of a chunk's 1,000 numbers was compiled per call.
        listed = bindparam("numbers", numbers, type_=ARRAY(String()))
        rows = await self.session.execute(
            select(DoNotCall.phone_number, DoNotCall.reason).where(
                DoNotCall.phone_number == any_(listed), DoNotCall.deleted.is_(False)
            )
        )
        return {number: reason for number, reason in rows.all()}

    async def active_campaigns_using(
        self, *, agent_id: str | None = None, phone_number_id: str | None = None, limit: int = 10
    ) -> list[str]:
        """Ids of campaigns not yet final (pending, running, paused) that call with `agent_id`, or
        from `phone_number_id` (their main number or one of their caller-ID pool), oldest first."""
        query = select(Campaign.campaign_id).where(
            Campaign.deleted.is_(False), Campaign.status.not_in(FINAL_CAMPAIGN_STATUSES)
        )
        if agent_id is not None:
            query = query.where(Campaign.agent_id == agent_id)
        if phone_number_id is not None:
            query = query.where(
                or_(
                    Campaign.phone_number_id == phone_number_id,
                    Campaign.phone_numbers.contains([{"phone_number_id": phone_number_id}]),
                )
            )
        rows = await self.session.scalars(query.order_by(Campaign.created_at_unix).limit(limit))
        return list(rows.all())

    async def call_seconds(self, agent_id: str | None) -> tuple[float | None, int]:
        """(mean duration in seconds, how many) of the finished calls with a duration, of one
        agent or (None) of all."""
        query = select(func.avg(Call.duration_seconds), func.count(Call.duration_seconds)).where(
            Call.duration_seconds.is_not(None), Call.duration_seconds > 0, Call.deleted.is_(False)
        )
        if agent_id is not None:
            query = query.where(Call.agent_id == agent_id)
        mean, count = (await self.session.execute(query)).one()
        return (float(mean) if mean is not None else None), int(count)


class Transcripts:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_part(
        self, conversation_id: str, part_index: int, part_count: int, turn_count: int, transcript_json: str
    ) -> None:
        await self.session.execute(
            insert(CallTranscriptPart)
            .values(
                conversation_id=conversation_id,
                part_index=part_index,
                part_count=part_count,
                turn_count=turn_count,
                transcript_json=transcript_json,
            )
            .on_conflict_do_nothing()
        )

    async def text(self, conversation_id: str) -> str | None:
        """The transcript's JSON text once every part is here, else None."""
        rows = (
            await self.session.execute(
                select(
                    CallTranscriptPart.part_index,
                    CallTranscriptPart.part_count,
                    CallTranscriptPart.transcript_json,
                )
                .where(CallTranscriptPart.conversation_id == conversation_id)
                .order_by(CallTranscriptPart.part_index)
            )
        ).all()
        if not rows or [r.part_index for r in rows] != list(range(rows[0].part_count)):
            return None
        return "".join(r.transcript_json for r in rows)


class Analyses:
    """Post-call analyses, one per conversation (a redelivered webhook changes nothing)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(CallAnalysis).values(**values).on_conflict_do_nothing())

    async def get(self, conversation_id: str) -> CallAnalysis | None:
        return await self.session.get(CallAnalysis, conversation_id)


class Operations:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_pending(self, operation_id: str, command_type: str) -> None:
        self.session.add(Operation(operation_id=operation_id, command_type=command_type, status="pending"))

    async def add_pending_once(self, operation_id: str, command_type: str) -> bool:
        """Insert the pending operation unless it exists (an idempotent retry re-uses its id)."""
        result = await self.session.execute(
            insert(Operation)
            .values(operation_id=operation_id, command_type=command_type, status="pending")
            .on_conflict_do_nothing()
            .returning(Operation.operation_id)
        )
        return result.first() is not None

    async def pending_type(self, operation_id: str) -> str | None:
        return await self.session.scalar(
            select(Operation.command_type).where(
                Operation.operation_id == operation_id, Operation.status == "pending"
            )
        )

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

    async def prune_finished(self, finished_before: datetime, limit: int) -> int:
        """Delete up to `limit` succeeded/failed operations completed before the cutoff.

        Pending ones stay whatever their age: a waiting request or a late outcome still needs them.
        """
        oldest = (
            select(Operation.operation_id)
            .where(Operation.status != "pending", Operation.updated_at < finished_before)
            .limit(limit)
        )
        return await _delete_counted(
            self.session, delete(Operation).where(Operation.operation_id.in_(oldest))
        )


class Uploads:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, upload: Upload) -> None:
        self.session.add(upload)

    async def get(self, upload_id: str) -> Upload | None:
        return await self.session.get(Upload, upload_id)

    async def prune(self, created_before: datetime, limit: int) -> int:
        oldest = select(Upload.upload_id).where(Upload.created_at < created_before).limit(limit)
        return await _delete_counted(self.session, delete(Upload).where(Upload.upload_id.in_(oldest)))


class IdempotencyKeys:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, key: str, request_hash: str) -> datetime | None:
        """The new key's window start (created_at), or None when the key exists."""
        return await self.session.scalar(
            insert(IdempotencyKey)
            .values(key=key, request_hash=request_hash, status="in_progress")
            .on_conflict_do_nothing()
            .returning(IdempotencyKey.created_at)
        )

    async def get_for_update(self, key: str) -> IdempotencyKey | None:
        return await self.session.scalar(
            select(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def restart(self, key: str, request_hash: str, *, new_window: bool) -> datetime:
        """Run the key's request again; returns its window start (reset when `new_window`)."""
        values: dict[str, Any] = {
            "request_hash": request_hash,
            "status": "in_progress",
            "status_code": None,
            "response": None,
            "updated_at": func.now(),
        }
        if new_window:
            values["created_at"] = func.now()
        window_start: datetime | None = await self.session.scalar(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .values(**values)
            .returning(IdempotencyKey.created_at)
        )
        assert window_start is not None  # the caller holds the row locked
        return window_start

    async def finish(self, key: str, status_code: int, response: bytes, content_type: str | None) -> None:
        await self.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .values(
                status="done",
                status_code=status_code,
                response=response,
                content_type=content_type,
                updated_at=func.now(),
            )
        )

    async def release(self, key: str) -> None:
        """Let the key's request run again; the row stays so a retry keeps its window (command id)."""
        await self.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .values(status="released", status_code=None, response=None, updated_at=func.now())
        )

    async def prune(self, created_before: datetime, limit: int) -> int:
        """Delete up to `limit` keys whose replay window began before the cutoff."""
        oldest = select(IdempotencyKey.key).where(IdempotencyKey.created_at < created_before).limit(limit)
        return await _delete_counted(
            self.session, delete(IdempotencyKey).where(IdempotencyKey.key.in_(oldest))
        )


# What a submission stages for each recipient, in `add_scheduled`'s order (the rest comes from its events).
STAGED_COLUMNS = (
    "campaign_id",
    "recipient_id",
    "position",
    "to_number",
    "status",
    "retry_count",
    "name",
    "email",
    "dynamic_variables",
)


class Recipients:
    """Campaign recipients: bulk-written at submission, then updated from recipient events."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_scheduled(
        self, campaign_id: str, first_position: int, recipients: Sequence[SubmittedRecipient]
    ) -> None:
        """Stage a chunk of a new campaign's recipients as `scheduled`, at positions from
        `first_position`, in the caller's transaction.

        One COPY (`bus.db.copy_rows`): a 100,000-recipient campaign is 100 chunks of 1,000 rows,
        and INSERT's per-row parameter handling was a third of its time. The campaign id is new,
        so no row can already exist (COPY has no ON CONFLICT).
        """
        if not recipients:
            return
        records = [
            (
                campaign_id,
                r.recipient_id,
                first_position + offset,
                r.phone_number,
                "scheduled",
                0,
                r.name,
                r.email,
                to_json(r.dynamic_variables).decode(),
            )
            for offset, r in enumerate(recipients)
        ]
        await copy_rows(self.session, cast(Table, CampaignRecipient.__table__), STAGED_COLUMNS, records)

    async def upsert(self, values: dict[str, Any], event_at: datetime) -> bool:
        """Insert or update unless a newer event already shaped the row; True when written."""
        table = cast(Table, CampaignRecipient.__table__)
        statement = _upsert_if_newer(table, tuple(values), ("campaign_id", "recipient_id"))
        result = await self.session.execute(statement, {**values, "last_event_at": event_at})
        return result.first() is not None

    async def upsert_many(
        self, campaign_id: str, rows: list[dict[str, Any]], event_at: datetime
    ) -> list[CampaignRecipient]:
        """Insert or update several recipients of one campaign from one bulk event (each row:
        recipient_id, position, to_number, status, reason, optionally time_zones), each unless a
        newer event already shaped it; returns the rows written, as they now are.

        A recipient the gateway did not stage (a campaign submitted straight onto the commands
        topic) is inserted without its submitted name, e-mail and dynamic variables."""
        if not rows:
            return []
        values = [
            {"campaign_id": campaign_id, "retry_count": 0, **r, "last_event_at": event_at} for r in rows
        ]
        stmt = insert(CampaignRecipient).values(values)
        table = CampaignRecipient.__table__
        updated = [k for k in rows[0] if k != "recipient_id"]
        upsert: Any = stmt.on_conflict_do_update(
            index_elements=["campaign_id", "recipient_id"],
            set_={**{k: stmt.excluded[k] for k in updated}, "last_event_at": event_at},
            where=(table.c.last_event_at.is_(None)) | (table.c.last_event_at < event_at),
        ).returning(CampaignRecipient)
        result = await self.session.scalars(upsert, execution_options={"populate_existing": True})
        return sorted(result.all(), key=lambda r: r.position)


@dataclass(frozen=True)
class RecipientResult:
    """A recipient, its attempts (calls, in order) and the analysis of its last analysed call."""

    recipient: CampaignRecipient
    analysis: CallAnalysis | None
    analysis_conversation_id: str | None
    attempts: list[Call]


class Results:
    """A campaign's results, a keyset page at a time (by recipient position): a page costs two
    queries whatever its size, so a 100,000-recipient export never holds more than one page."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        campaign_id: str,
        *,
        after_position: int | None,
        page_size: int,
        status: Sequence[str] | None = None,
        outcome: Sequence[str] | None = None,
        search: str | None = None,
        recipient_id: str | None = None,
    ) -> tuple[list[RecipientResult], bool]:
        """(up to `page_size` recipients after `after_position` in submission order, has_more).
        `status`, `outcome`: any of these values; `search`: a piece of the number,
        name, e-mail or recipient id (case ignored)."""
        # The last attempt ElevenLabs analysed (a post_call_transcription): the last answered call.
        last = (
            select(CallAnalysis)
            .join(Call, Call.conversation_id == CallAnalysis.conversation_id)
            .where(
                Call.campaign_id == CampaignRecipient.campaign_id,
                Call.recipient_id == CampaignRecipient.recipient_id,
            )
            .order_by(Call.attempt.desc().nulls_last(), Call.placed_at_unix.desc())
            .limit(1)
            .lateral("last_analysis")
        )
        analysis = aliased(CallAnalysis, last)
        query = (
            select(CampaignRecipient, analysis)
            .outerjoin(last, true())
            .where(CampaignRecipient.campaign_id == campaign_id)
            .order_by(CampaignRecipient.position)
            .limit(page_size + 1)
        )
        if after_position is not None:
            query = query.where(CampaignRecipient.position > after_position)
        if status:
            query = query.where(CampaignRecipient.status.in_(status))
        if outcome:
            query = query.where(CampaignRecipient.outcome.in_(outcome))
        if recipient_id is not None:
            query = query.where(CampaignRecipient.recipient_id == recipient_id)
        search = (search or "").replace("\x00", "")  # PostgreSQL text holds no NUL: it matches nothing
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(
                    CampaignRecipient.to_number.ilike(pattern),
                    CampaignRecipient.name.ilike(pattern),
                    CampaignRecipient.email.ilike(pattern),
                    CampaignRecipient.recipient_id.ilike(pattern),
                )
            )
        rows = (await self.session.execute(query)).all()
        has_more = len(rows) > page_size
        rows = rows[:page_size]
        attempts: dict[str, list[Call]] = {}
        if rows:
            calls = await self.session.scalars(
                select(Call)
                .where(
                    Call.campaign_id == campaign_id,
                    Call.recipient_id.in_([r[0].recipient_id for r in rows]),
                    Call.deleted.is_(False),
                )
                .order_by(Call.recipient_id, Call.attempt.nulls_last(), Call.placed_at_unix)
            )
            for call in calls:
                attempts.setdefault(call.recipient_id or "", []).append(call)
        return [
            RecipientResult(
                recipient=recipient,
                analysis=found,
                analysis_conversation_id=found.conversation_id if found is not None else None,
                attempts=attempts.get(recipient.recipient_id, []),
            )
            for recipient, found in rows
        ], has_more

    async def status_counts(self, campaign_id: str) -> dict[str, int]:
        """{recipient status: how many recipients of the campaign have it} (statuses with none left out)."""
        rows = await self.session.execute(
            select(CampaignRecipient.status, func.count())
            .where(CampaignRecipient.campaign_id == campaign_id)
            .group_by(CampaignRecipient.status)
        )
        return {status: count for status, count in rows.tuples()}

    async def data_collection_keys(self, campaign_id: str) -> list[str]:
        """Every data collection id in the campaign's analyses, sorted (one index-driven pass)."""
        keys = await self.session.scalars(
            select(func.jsonb_object_keys(CallAnalysis.data_collection_results))
            .join(Call, Call.conversation_id == CallAnalysis.conversation_id)
            .where(Call.campaign_id == campaign_id)
            .distinct()
        )
        return sorted(keys.all())

    async def dynamic_variable_keys(self, campaign_id: str) -> list[str]:
        """Every dynamic variable name the campaign's recipients were submitted with, sorted."""
        keys = await self.session.scalars(
            select(func.jsonb_object_keys(CampaignRecipient.dynamic_variables))
            .where(CampaignRecipient.campaign_id == campaign_id)
            .distinct()
        )
        return sorted(keys.all())


class Changes:
    """The campaign change log (`models.CampaignChange`) the live progress streams read."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def append(self, changes: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Append (campaign id, kind, payload) rows and notify, both at commit.

        An identity's values are handed out at insert but become visible at commit, in any order:
        a reader resuming from id 11 would skip 10 if 10 committed later. The transaction-scoped
        lock makes appenders take ids and commit one after another, so ids become visible in
        order; call this last in the transaction, so the lock is held only until its commit. In a
        batch of events (`bus.batch`) the rows of all of them are written once, just before the
        batch's COMMIT: one lock, one INSERT and one NOTIFY per campaign for the batch."""
        if not batch.gather("gateway.campaign_changes", changes, self._write):
            await self._write(changes)

    async def _write(self, changes: list[tuple[str, str, dict[str, Any]]]) -> None:
        if not changes:
            return
        await self.session.execute(
            _APPEND_CHANGES,
            {
                "campaign_ids": [campaign_id for campaign_id, _, _ in changes],
                "kinds": [kind for _, kind, _ in changes],
                "payloads": [to_json(payload).decode() for _, _, payload in changes],
            },
        )

    async def after(self, change_id: int, campaign_id: str | None, limit: int) -> list[CampaignChange]:
        """Up to `limit` changes with an id above `change_id`, of one campaign or (None) all, in order."""
        query = (
            select(CampaignChange)
            .where(CampaignChange.change_id > change_id)
            .order_by(CampaignChange.change_id)
            .limit(limit)
        )
        if campaign_id is not None:
            query = query.where(CampaignChange.campaign_id == campaign_id)
        return list((await self.session.scalars(query)).all())

    async def last_id(self) -> int:
        """The newest change's id (0 when there is none): where a stream without Last-Event-ID starts."""
        return int(
            await self.session.scalar(select(func.coalesce(func.max(CampaignChange.change_id), 0))) or 0
        )

    async def highest_id_taken(self) -> int:
        """The highest change id ever handed out (0 before the first): the identity sequence's, not
        the newest row's, since retention can prune every row while the ids sent stay valid. An id
        above it was never sent by this database (one from before a reset, or made up)."""
        taken = await self.session.scalar(
            text("SELECT pg_sequence_last_value(pg_get_serial_sequence(:table, 'change_id'))"),
            {"table": f"{CampaignChange.__table__.schema}.{CampaignChange.__tablename__}"},
        )
        return int(taken or 0)

    async def prune(self, created_before: datetime, limit: int) -> int:
        """Delete up to `limit` of the oldest changes created before the cutoff."""
        oldest = (
            select(CampaignChange.change_id)
            .where(CampaignChange.created_at < created_before)
            .order_by(CampaignChange.change_id)
            .limit(limit)
        )
        return await _delete_counted(
            self.session, delete(CampaignChange).where(CampaignChange.change_id.in_(oldest))
        )


class ApiKeys:
    """Stored API keys (`gateway.access`); every request with one reads its row (no cache), so a
    revocation holds on every replica from the next request on."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> None:
        """Insert the key and load what the database filled in (`created_at`)."""
        self.session.add(key)
        await self.session.flush()
        await self.session.refresh(key)

    async def active(self, key_id: str, last_used_resolution: timedelta) -> tuple[ApiKey, bool] | None:
        """(the unrevoked key, whether its `last_used_at` is older than `last_used_resolution` by
        the database's clock), or None."""
        stale = or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < func.now() - last_used_resolution)
        row = (
            await self.session.execute(
                select(ApiKey, stale.label("stale")).where(
                    ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None)
                )
            )
        ).first()
        return None if row is None else (row[0], bool(row[1]))

    async def touch(self, key_id: str, last_used_resolution: timedelta) -> None:
        """Record a use, unless another request (or replica) recorded one within the resolution."""
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.key_id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < func.now() - last_used_resolution),
            )
            .values(last_used_at=func.now())
        )

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id, populate_existing=True)

    async def listed(self) -> list[ApiKey]:
        """Every stored key, revoked ones too, newest first."""
        return list((await self.session.scalars(select(ApiKey).order_by(ApiKey.created_at.desc()))).all())

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key (a second revocation keeps the first time); None when there is no such key."""
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        return await self.get(key_id)


def _bucket_statements() -> tuple[Any, Any]:
    """(take, level): built once; each call only binds `bucket`, `rate`, `burst` and `at` (NULL: the
    database's clock). A take is refused (no row returned) below one token, and then writes nothing."""
    now = func.coalesce(bindparam("at", type_=DateTime(timezone=True)), func.now())
    rate, burst = bindparam("rate", type_=Float), bindparam("burst", type_=Float)
    elapsed = func.greatest(0.0, func.extract("epoch", now - RateBucket.refilled_at))
    level = func.least(burst, RateBucket.tokens + elapsed * rate)
    fresh = insert(RateBucket).values(bucket=bindparam("bucket"), tokens=burst - 1.0, refilled_at=now)
    take = fresh.on_conflict_do_update(
        index_elements=[RateBucket.bucket],
        set_={"tokens": level - 1.0, "refilled_at": func.greatest(RateBucket.refilled_at, now)},
        where=level >= 1.0,
    ).returning(RateBucket.bucket)
    return take, select(level).where(RateBucket.bucket == bindparam("bucket"))


_TAKE, _LEVEL = _bucket_statements()


class RateBuckets:
    """Token buckets of API keys, one row each in an UNLOGGED table shared by every gateway replica:
    a key's limit holds across replicas. A take is one atomic statement (the row's lock orders
    concurrent requests), on the database's clock unless `at` is given. UNLOGGED: no WAL for a
    write per request; after a PostgreSQL crash the buckets start full again."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def take(
        self, bucket: str, rate_per_s: float, burst: int, *, at: datetime | None = None
    ) -> float | None:
        """Take a token: None when taken, else the seconds until the bucket holds one (nothing taken).

        The bucket refills at `rate_per_s` tokens per second up to `burst`; a new bucket starts full."""
        params = {"bucket": bucket, "rate": rate_per_s, "burst": float(burst), "at": at}
        if (await self.session.execute(_TAKE, params)).first() is not None:
            return None
        held = await self.session.scalar(_LEVEL, params)
        return (1.0 - float(held or 0.0)) / rate_per_s

    async def forget(self, bucket: str) -> None:
        await self.session.execute(delete(RateBucket).where(RateBucket.bucket == bucket))


class WebhookDeliveries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, values: dict[str, Any], event_at: datetime) -> None:
        """Insert or update unless a newer event already shaped the row."""
        stmt = insert(WebhookDelivery).values(**values, last_event_at=event_at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["delivery_id"],
            set_={**{k: stmt.excluded[k] for k in values if k != "delivery_id"}, "last_event_at": event_at},
            where=WebhookDelivery.__table__.c.last_event_at <= event_at,
        )
        await self.session.execute(stmt)

    async def add_attempt(self, values: dict[str, Any]) -> None:
        await self.session.execute(insert(WebhookDeliveryAttempt).values(**values).on_conflict_do_nothing())

    async def prune_finished(self, changed_before: datetime, limit: int) -> int:
        """Delete up to `limit` delivered or failed deliveries last changed before the cutoff, with
        their attempts; returns how many deliveries. Pending ones stay: a retry is still to come."""
        oldest = (
            select(WebhookDelivery.delivery_id)
            .where(WebhookDelivery.status != "pending", WebhookDelivery.last_event_at < changed_before)
            .limit(limit)
        )
        ids = list((await self.session.scalars(oldest)).all())
        if not ids:
            return 0
        await _delete_counted(
            self.session, delete(WebhookDeliveryAttempt).where(WebhookDeliveryAttempt.delivery_id.in_(ids))
        )
        return await _delete_counted(
            self.session, delete(WebhookDelivery).where(WebhookDelivery.delivery_id.in_(ids))
        )

    async def get(self, delivery_id: str) -> WebhookDelivery | None:
        return await self.session.get(WebhookDelivery, delivery_id)

    async def page(
        self, webhook_id: str, *, after_position: int | None, page_size: int, status: str | None
    ) -> tuple[list[WebhookDelivery], bool]:
        """Newest first; returns (rows, has_more)."""
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == webhook_id)
            .order_by(WebhookDelivery.position.desc())
            .limit(page_size + 1)
        )
        if status is not None:
            query = query.where(WebhookDelivery.status == status)
        if after_position is not None:
            query = query.where(WebhookDelivery.position < after_position)
        rows = list((await self.session.scalars(query)).all())
        return rows[:page_size], len(rows) > page_size

    async def attempts(self, delivery_ids: list[str]) -> dict[str, list[WebhookDeliveryAttempt]]:
        """Every attempt of each delivery, in order."""
        out: dict[str, list[WebhookDeliveryAttempt]] = {i: [] for i in delivery_ids}
        if not delivery_ids:
            return out
        rows = await self.session.scalars(
            select(WebhookDeliveryAttempt)
            .where(WebhookDeliveryAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookDeliveryAttempt.delivery_id, WebhookDeliveryAttempt.attempt)
        )
        for row in rows:
            out[row.delivery_id].append(row)
        return out
