"""Every query of the campaigns service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    CursorResult,
    DateTime,
    Integer,
    Row,
    String,
    Table,
    bindparam,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bus.db import copy_rows
from campaigns.domain import (
    FINAL_RECIPIENT_STATUSES,
    OPEN_ATTEMPT_STATUSES,
    AttemptStatus,
    CampaignStatus,
    RecipientStatus,
)
from campaigns.models import (
    Attempt,
    Campaign,
    CampaignCallerId,
    CampaignChunk,
    CampaignNumber,
    DispatchState,
    DoNotCall,
    FollowUpCall,
    PhoneNumberProvider,
    Recipient,
)

_DISPATCH_LOCK = "campaigns:dispatch"


class TickCandidates(NamedTuple):
    """What a scheduler pass may have to do (`CampaignRepository.tick_candidates`)."""

    campaigns: list[Campaign]  # due to start, running, or owing a progress snapshot
    follow_ups_due: bool  # a scheduled follow-up call's time came


class DueRecipient(NamedTuple):
    """A recipient due now (`RecipientRepository.due`), with what its dial depends on."""

    recipient: Recipient
    listed: bool  # its number is on the do-not-call list
    dials: list[tuple[str, datetime]]  # its number's recent dials: (campaign_id, dialed_at)


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, **values: Any) -> bool:
        """Insert unless it exists; True when created now."""
        result = await self.session.execute(
            insert(Campaign).values(**values).on_conflict_do_nothing().returning(Campaign.campaign_id)
        )
        return result.first() is not None

    async def get_for_update(self, campaign_id: str) -> Campaign | None:
        return await self.session.scalar(
            select(Campaign)
            .where(Campaign.campaign_id == campaign_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def get_for_dispatch(self, campaign_id: str) -> tuple[Campaign, float | None, int] | None:
        """The campaign locked, with the shared (global) throttle and the calls in flight across
        every campaign: one statement, read under the dispatch lock (`lock_dispatch`), which every
        writer that adds to `in_flight` holds. A sum read before this row's lock was granted can
        only be too high (outcomes lower it meanwhile), so the budget errs on the safe side."""
        row = (await self.session.execute(_DISPATCH_READ, {"campaign_id": campaign_id})).first()
        return None if row is None else (row[0], row[1], int(row[2]))

    async def get(self, campaign_id: str) -> Campaign | None:
        return await self.session.get(Campaign, campaign_id, populate_existing=True)

    async def tick_candidates(self, now: datetime, progress_before: datetime) -> TickCandidates:
        """Campaigns a scheduler pass may touch, oldest first (`domain.plan_tick` sorts them): due
        to start, running, or owing a progress snapshot; and whether a scheduled follow-up call's
        time came. One query, which a pass with nothing to do is (every CAMPAIGNS_TICK_S): the
        campaigns are outer-joined to one row, so the follow-ups' answer comes with none."""
        rows = (
            await self.session.execute(
                _TICK_CANDIDATES,
                {"now": now, "now_unix": int(now.timestamp()), "progress_before": progress_before},
            )
        ).all()
        return TickCandidates(
            [campaign for _, campaign in rows if campaign is not None], bool(rows and rows[0][0])
        )

    async def running_ids(self) -> Sequence[str]:
        result = await self.session.scalars(
            select(Campaign.campaign_id)
            .where(Campaign.status == CampaignStatus.RUNNING)
            .order_by(Campaign.created_at_unix, Campaign.campaign_id)
        )
        return result.all()

    async def count_running(self) -> int:
        value = await self.session.scalar(
            select(func.count()).select_from(Campaign).where(Campaign.status == CampaignStatus.RUNNING)
        )
        return int(value or 0)

    async def total_in_flight(self) -> int:
        value = await self.session.scalar(select(func.coalesce(func.sum(Campaign.in_flight), 0)))
        return int(value or 0)


class ChunkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, campaign_id: str, chunk_index: int) -> bool:
        """Record a chunk; False for a duplicate."""
        result = await self.session.execute(
            insert(CampaignChunk)
            .values(campaign_id=campaign_id, chunk_index=chunk_index)
            .on_conflict_do_nothing()
            .returning(CampaignChunk.chunk_index)
        )
        return result.first() is not None

    async def count_below(self, campaign_id: str, chunks: int) -> int:
        value = await self.session.scalar(
            select(func.count())
            .select_from(CampaignChunk)
            .where(CampaignChunk.campaign_id == campaign_id, CampaignChunk.chunk_index < chunks)
        )
        return int(value or 0)

    async def lock(self, campaign_id: str) -> None:
        """Serialise chunk arrival of one campaign (chunks may come in parallel, before the submit)."""
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"campaigns:chunks:{campaign_id}"}
        )


# What a bulk close reports of each recipient it closed.
CLOSED_COLUMNS = (
    "recipient_id",
    "position",
    "phone_number",
    "retries",
    "conversation_id",
    "duration_seconds",
    "outcome",
    "time_zones",
)


# What a chunk's recipients arrive with (`RecipientRepository.add_many`).
ARRIVING_COLUMNS = (
    "campaign_id",
    "chunk_index",
    "chunk_offset",
    "given_recipient_id",
    "phone_number",
    "name",
    "email",
    "dynamic_variables",
    "time_zones",
    "status",
    "reason",
)


class RecipientRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Store a chunk's recipients (keys: `ARRIVING_COLUMNS`), in the caller's transaction.

        One COPY (`bus.db.copy_rows`): the 1,000-row INSERT was most of the time a
        100,000-recipient campaign took to be stored (`bench/batch_intake.py`). COPY has no ON
        CONFLICT: the chunk's ledger row (`ChunkRepository.add`, same transaction) is what makes
        every slot new.
        """
        if not rows:
            return
        records = [
            (*(json.dumps(r[c]) if c == "dynamic_variables" else r[c] for c in ARRIVING_COLUMNS), 0, 0, False)
            for r in rows
        ]
        columns = (*ARRIVING_COLUMNS, "retries", "attempts", "dispatched")
        await copy_rows(self.session, cast(Table, Recipient.__table__), columns, records)

    async def finalize(self, campaign_id: str, chunks: int) -> tuple[int, int]:
        """All chunks are in: drop recipients of chunks beyond the declared count, assign 0-based
        positions (chunk order, then order within the chunk) and default ids (r<position>), mark a
        number's later occurrences `skipped_duplicate` (numbers are E.164 already, so equal strings
        are the same number), then repeated recipient ids failed. Returns (total, already final).
        Runs once per campaign."""
        await self.session.execute(
            delete(Recipient).where(Recipient.campaign_id == campaign_id, Recipient.chunk_index >= chunks)
        )
        await self.session.execute(
            text(
                """
                UPDATE campaigns.recipients AS r
                SET position = s.pos,
                    recipient_id = s.rid,
                    status = CASE WHEN s.n > 1 THEN 'skipped_duplicate' ELSE r.status END,
                    reason = CASE WHEN s.n > 1
                        THEN 'Same phone number as recipient ' || s.first_rid
                             || ' (position ' || s.first_pos::text || '): dialled once'
                        ELSE r.reason END,
                    next_attempt_at = CASE WHEN s.n > 1 THEN NULL ELSE r.next_attempt_at END
                FROM (
                    SELECT id, pos, rid,
                           row_number() OVER w AS n,
                           first_value(pos) OVER w AS first_pos,
                           first_value(rid) OVER w AS first_rid
                    FROM (
                        SELECT id, phone_number, p.pos,
                               COALESCE(given_recipient_id, 'r' || p.pos::text) AS rid
                        FROM (
                            SELECT id, phone_number, given_recipient_id,
                                   (row_number() OVER (ORDER BY chunk_index, chunk_offset)) - 1 AS pos
                            FROM campaigns.recipients WHERE campaign_id = :c
                        ) AS p
                    ) AS q
                    WINDOW w AS (PARTITION BY phone_number ORDER BY pos)
                ) AS s
                WHERE r.id = s.id
                """
            ),
            {"c": campaign_id},
        )
        await self.session.execute(
            text(
                """
                UPDATE campaigns.recipients AS r
                SET status = 'failed', reason = 'Duplicate recipient_id in the campaign',
                    next_attempt_at = NULL
                FROM (
                    SELECT id, row_number() OVER (PARTITION BY recipient_id ORDER BY position) AS n
                    FROM campaigns.recipients WHERE campaign_id = :c
                ) AS d
                WHERE r.id = d.id AND d.n > 1 AND r.status = 'scheduled'
                """
            ),
            {"c": campaign_id},
        )
        row = (
            await self.session.execute(
                select(
                    func.count(),
                    func.count().filter(Recipient.status.in_(FINAL_RECIPIENT_STATUSES)),
                ).where(Recipient.campaign_id == campaign_id)
            )
        ).one()
        return int(row[0]), int(row[1])

    async def waiting_before_submit(self, campaign_id: str) -> Sequence[tuple[int, str]]:
        """(pk, number) of scheduled recipients of chunks that arrived before the submit (stored
        without the campaign's zone)."""
        result = await self.session.execute(
            select(Recipient.id, Recipient.phone_number).where(
                Recipient.campaign_id == campaign_id,
                Recipient.chunk_index > 0,
                Recipient.status == RecipientStatus.SCHEDULED,
            )
        )
        return [(int(pk), str(number)) for pk, number in result.all()]

    async def set_time_zones(self, zones_by_pk: list[dict[str, Any]]) -> None:
        """Bulk update by primary key: [{"id": pk, "time_zones": [...]}, ...]."""
        if zones_by_pk:
            await self.session.execute(update(Recipient), zones_by_pk)

    async def final_at_submit(self, campaign_id: str) -> Sequence[Recipient]:
        """Recipients rejected on arrival (invalid number, duplicate id or number), for their events."""
        result = await self.session.scalars(
            select(Recipient)
            .where(
                Recipient.campaign_id == campaign_id,
                Recipient.status.in_([RecipientStatus.FAILED, RecipientStatus.SKIPPED_DUPLICATE]),
            )
            .order_by(Recipient.position)
        )
        return result.all()

    async def due(
        self, campaign_id: str, now: datetime, limit: int, dials_since: datetime
    ) -> list[DueRecipient]:
        """Due recipients in position order, locked (rows another replica holds are skipped), each
        with whether its number is on the do-not-call list and its number's dials since
        `dials_since` in every campaign ((campaign_id, dialed_at), oldest first; attempts refused
        with 429 rang nobody and do not count): one statement, where three reads took three round
        trips on the path from a call's end to the next dial. The list and the dials are read in
        the statement's snapshot, as separate reads after the dispatch lock read them."""
        result = await self.session.execute(
            _DUE_RECIPIENTS,
            {"campaign_id": campaign_id, "now": now, "limit": limit, "dials_since": dials_since},
        )
        return [
            DueRecipient(recipient, bool(listed), list(zip(campaigns or [], times or [], strict=True)))
            for recipient, listed, campaigns, times in result.all()
        ]

    async def get_for_update(self, pk: int) -> Recipient | None:
        return await self.session.scalar(
            select(Recipient)
            .where(Recipient.id == pk)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def close_scheduled(self, campaign_id: str, status: str, reason: str | None) -> list[Row[Any]]:
        """Every waiting recipient of the campaign → `status` (final), in one statement; returns
        the recipients closed by position, as rows of `CLOSED_COLUMNS` (what
        `campaign.recipients_closed` announces; id and position are None before the campaign is
        staged). Columns, not ORM objects: a cancel may close 100,000 recipients."""
        result = await self.session.execute(
            update(Recipient)
            .where(Recipient.campaign_id == campaign_id, Recipient.status == RecipientStatus.SCHEDULED)
            .values(status=status, reason=reason, next_attempt_at=None, waiting_reason=None)
            .returning(*(getattr(Recipient, c) for c in CLOSED_COLUMNS))
        )
        return sorted(result.all(), key=lambda r: -1 if r.position is None else r.position)

    async def staged(
        self, campaign_id: str, part_size: int
    ) -> AsyncIterator[list[tuple[str, int, str, str, list[str], str | None]]]:
        """Every recipient of a staged campaign as (recipient_id, position, phone_number, status,
        time_zones, reason), by position, `part_size` at a time: one query streamed through a
        server-side cursor, so a 100,000-recipient campaign is sorted once and never held whole."""
        result = await self.session.stream(
            select(
                Recipient.recipient_id,
                Recipient.position,
                Recipient.phone_number,
                Recipient.status,
                Recipient.time_zones,
                Recipient.reason,
            )
            .where(Recipient.campaign_id == campaign_id)
            .order_by(Recipient.position)
            .execution_options(yield_per=part_size)
        )
        async for part in result.partitions(part_size):
            yield [
                (str(rid), -1 if pos is None else pos, str(number), str(status), list(zones or []), reason)
                for rid, pos, number, status, zones, reason in part
            ]

    async def outcomes(self, campaign_id: str) -> tuple[dict[str, int], str | None]:
        """({recipient status: count}, the reason of the first failed recipient by position, if
        any) of one campaign: what its completion says when nobody was reached."""
        counts = await self.session.execute(
            select(Recipient.status, func.count())
            .where(Recipient.campaign_id == campaign_id)
            .group_by(Recipient.status)
        )
        reason = await self.session.scalar(
            select(Recipient.reason)
            .where(
                Recipient.campaign_id == campaign_id,
                Recipient.status == RecipientStatus.FAILED,
                Recipient.reason.is_not(None),
            )
            .order_by(Recipient.position)
            .limit(1)
        )
        return {str(status): int(n) for status, n in counts.all()}, reason

    async def find_pk(self, campaign_id: str, recipient_id: str) -> int | None:
        """The row of a campaign's recipient by its id (not locked: lock the campaign first)."""
        return await self.session.scalar(
            select(Recipient.id).where(
                Recipient.campaign_id == campaign_id, Recipient.recipient_id == recipient_id
            )
        )


class CampaignNumberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, campaign_id: str, phone_number: str, recipient_pk: int) -> int:
        """The recipient (pk) that may dial this number in this campaign: `recipient_pk` if it is
        the first to ask (or asked before), else the one that did."""
        stmt = insert(CampaignNumber).values(
            campaign_id=campaign_id, phone_number=phone_number, recipient_pk=recipient_pk
        )
        # DO UPDATE with the current value so RETURNING gives the owner in one round trip.
        owner = stmt.on_conflict_do_update(
            index_elements=[CampaignNumber.campaign_id, CampaignNumber.phone_number],
            set_={"recipient_pk": CampaignNumber.recipient_pk},
        ).returning(CampaignNumber.recipient_pk)
        return int((await self.session.execute(owner)).scalar_one())


class AttemptRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, **values: Any) -> bool:
        result = await self.session.execute(
            insert(Attempt).values(**values).on_conflict_do_nothing().returning(Attempt.message_id)
        )
        return result.first() is not None

    async def lock_for_event(
        self, campaign_id: str, recipient_id: str, attempt: int
    ) -> tuple[Campaign, Attempt, Recipient, float | None] | None:
        """The campaign, the attempt (by campaign, recipient and number) and its recipient, locked
        in that order, with the shared (global) throttle: one statement, where three reads took
        three round trips on the path from a call's end to the next dial. None when any is gone.

        PostgreSQL locks a row's `FOR UPDATE OF` tables in the order the clause names them: the
        parser keeps the clause's order (`transformLockingClause`), `preprocess_rowmarks` keeps it
        and `ExecLockRows` walks it. That is the source's behaviour (PostgreSQL 15), not a
        documented promise: `tests/integration/test_outcome_locks.py` holds the attempt and checks
        that the campaign is locked and the recipient is not. It is the order every writer of a
        campaign's rows keeps (`outcomes`). A locked row that a concurrent transaction changed is
        re-read at its latest version (READ COMMITTED's re-check), as separate reads would have
        seen it. The throttle is not locked: it is read in the statement's snapshot, before any
        lock wait, so a throttle set meanwhile is seen by the next event instead (only a gate for
        the locked re-read of `DispatchStateRepository.global_for_update`; the shared throttle
        then recovers one success later)."""
        row = (
            await self.session.execute(
                _EVENT_LOCKS, {"campaign_id": campaign_id, "recipient_id": recipient_id, "attempt": attempt}
            )
        ).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def exists(self, campaign_id: str, recipient_id: str, attempt: int) -> bool:
        found = await self.session.scalar(
            select(Attempt.message_id).where(
                Attempt.campaign_id == campaign_id,
                Attempt.recipient_id == recipient_id,
                Attempt.attempt == attempt,
            )
        )
        return found is not None

    async def get_for_update(self, message_id: str) -> Attempt | None:
        return await self.session.scalar(
            select(Attempt)
            .where(Attempt.message_id == message_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def latest_caller_dials(self, caps: dict[str, int], since: datetime) -> dict[str, list[datetime]]:
        """Per capped caller ID ({phone_number_id: cap}), its latest `cap` dials since `since` (every
        campaign's; 429-refused attempts rang nobody and do not count): all a cap needs, read from
        the (phone_number_id, dialed_at) index however many dials the number made."""
        if not caps:
            return {}
        result = await self.session.execute(
            text(
                """
                SELECT c.id, d.dialed_at
                FROM unnest(CAST(:ids AS text[]), CAST(:caps AS int[])) AS c(id, cap)
                CROSS JOIN LATERAL (
                    SELECT a.dialed_at FROM campaigns.attempts AS a
                    WHERE a.phone_number_id = c.id AND a.dialed_at > :since AND a.status <> :rate_limited
                    ORDER BY a.dialed_at DESC LIMIT c.cap
                ) AS d
                """
            ),
            {
                "ids": list(caps),
                "caps": list(caps.values()),
                "since": since,
                "rate_limited": AttemptStatus.RATE_LIMITED,
            },
        )
        out: dict[str, list[datetime]] = {}
        for phone_number_id, dialed_at in result.all():
            out.setdefault(phone_number_id, []).append(dialed_at)
        return out

    async def timed_out(self, dialed_before: datetime, limit: int) -> Sequence[Attempt]:
        result = await self.session.scalars(
            select(Attempt)
            .where(
                Attempt.status.in_(OPEN_ATTEMPT_STATUSES),
                Attempt.dialed_at < dialed_before,
            )
            .order_by(Attempt.dialed_at)
            .limit(limit)
        )
        return result.all()


class DoNotCallRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, phone_number: str, reason: str | None, added_at_unix: int) -> tuple[str | None, int]:
        """Put the number on the list, or leave it there: a number listed already keeps the date
        it was first added, and its reason unless a new one is given (None never erases one).
        Returns the entry as it now stands: (reason, added_at_unix)."""
        stmt = insert(DoNotCall).values(phone_number=phone_number, reason=reason, added_at_unix=added_at_unix)
        row = (
            await self.session.execute(
                stmt.on_conflict_do_update(
                    index_elements=[DoNotCall.phone_number],
                    set_={"reason": func.coalesce(stmt.excluded.reason, DoNotCall.reason)},
                ).returning(DoNotCall.reason, DoNotCall.added_at_unix)
            )
        ).one()
        return row.reason, row.added_at_unix

    async def remove(self, phone_number: str) -> bool:
        result = await self.session.execute(
            delete(DoNotCall).where(DoNotCall.phone_number == phone_number).returning(DoNotCall.phone_number)
        )
        return result.first() is not None

    async def listed(self, numbers: list[str]) -> set[str]:
        if not numbers:
            return set()
        result = await self.session.scalars(
            select(DoNotCall.phone_number).where(DoNotCall.phone_number.in_(numbers))
        )
        return set(result.all())


class DispatchStateRepository:
    GLOBAL = "global"

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_dispatch(self) -> None:
        """Serialise dispatching across replicas, so the global budget is never overspent."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": _DISPATCH_LOCK})

    async def global_for_update(self) -> DispatchState:
        """The shared row, created on first use, locked."""
        await self.session.execute(
            insert(DispatchState).values(name=self.GLOBAL, throttle=None).on_conflict_do_nothing()
        )
        row = await self.session.scalar(
            select(DispatchState)
            .where(DispatchState.name == self.GLOBAL)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert row is not None
        return row


class PhoneNumberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def upsert(self, phone_number_id: str, provider: str, phone_number: str) -> None:
        values = {"provider": provider, "phone_number": phone_number}
        await self.session.execute(
            insert(PhoneNumberProvider)
            .values(phone_number_id=phone_number_id, **values)
            .on_conflict_do_update(index_elements=[PhoneNumberProvider.phone_number_id], set_=values)
        )

    async def known(self, phone_number_ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """(provider, E.164 or None) of the numbers the projection knows, by id."""
        result = await self.session.execute(
            select(
                PhoneNumberProvider.phone_number_id,
                PhoneNumberProvider.provider,
                PhoneNumberProvider.phone_number,
            ).where(PhoneNumberProvider.phone_number_id.in_(phone_number_ids))
        )
        return {pid: (provider, number) for pid, provider, number in result.all()}

    async def remove(self, phone_number_id: str) -> None:
        await self.session.execute(
            delete(PhoneNumberProvider).where(PhoneNumberProvider.phone_number_id == phone_number_id)
        )


class CallerIdRepository:
    """A campaign's caller-ID pool and its per-number counters."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_pool(self, campaign_id: str, phone_number_ids: list[str]) -> None:
        if phone_number_ids:
            await self.session.execute(
                insert(CampaignCallerId)
                .values(
                    [
                        {
                            "campaign_id": campaign_id,
                            "phone_number_id": pid,
                            "position": i,
                            "dials": 0,
                            "answered": 0,
                        }
                        for i, pid in enumerate(phone_number_ids)
                    ]
                )
                .on_conflict_do_nothing()
            )

    async def count(
        self, campaign_id: str, phone_number_id: str, *, dials: int = 0, answered: int = 0
    ) -> None:
        await self.session.execute(
            _COUNT_CALLER_ID,
            {
                "by_campaign": campaign_id,
                "by_number": phone_number_id,
                "add_dials": dials,
                "add_answered": answered,
            },
        )

    async def stats(self, campaign_id: str) -> Sequence[CampaignCallerId]:
        result = await self.session.scalars(
            select(CampaignCallerId)
            .where(CampaignCallerId.campaign_id == campaign_id)
            .order_by(CampaignCallerId.position)
            .execution_options(populate_existing=True)
        )
        return result.all()


class FollowUpRepository:
    """Follow-up calls of single calls whose callee asked for a callback."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def book(self, **values: Any) -> FollowUpCall | None:
        """Insert or move (while still `scheduled`) the conversation's follow-up; the row after, or
        None when it was already placed or cancelled."""
        stmt = insert(FollowUpCall).values(**values)
        moved = {"due_at": stmt.excluded.due_at, "requested": stmt.excluded.requested}
        result = await self.session.scalars(
            stmt.on_conflict_do_update(
                index_elements=[FollowUpCall.conversation_id],
                set_=moved,
                where=FollowUpCall.status == "scheduled",
            )
            .returning(FollowUpCall)
            .execution_options(populate_existing=True)
        )
        return result.first()

    async def due(self, now: datetime, limit: int) -> Sequence[FollowUpCall]:
        """Scheduled follow-ups whose time came, locked; rows another replica holds are skipped."""
        result = await self.session.scalars(
            select(FollowUpCall)
            .where(FollowUpCall.status == "scheduled", FollowUpCall.due_at <= now)
            .order_by(FollowUpCall.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        return result.all()

    async def cancel_for_number(self, phone_number: str) -> int:
        """Scheduled follow-ups to a number that opted out → cancelled; how many."""
        result = await self.session.execute(
            update(FollowUpCall)
            .where(FollowUpCall.to_number == phone_number, FollowUpCall.status == "scheduled")
            .values(status="cancelled")
        )
        return int(cast(CursorResult[Any], result).rowcount)


# ---- the statements a campaign call runs, built once ----------------------------------------------
# Built per call, SQLAlchemy spent ~0.1-0.5 ms constructing each and computing its cache key: ~12 %
# of this service's CPU in a campaign (bench/README, issue 17). Built once, the key is memoised on
# the statement and the compiled form comes from the engine's cache; each takes bound parameters.


def _dispatch_read() -> Any:
    """`CampaignRepository.get_for_dispatch`; parameter `campaign_id`."""
    others = aliased(Campaign)
    return (
        select(
            Campaign,
            select(DispatchState.throttle)
            .where(DispatchState.name == DispatchStateRepository.GLOBAL)
            .scalar_subquery(),
            select(func.coalesce(func.sum(others.in_flight), 0)).scalar_subquery(),
        )
        .where(Campaign.campaign_id == bindparam("campaign_id"))
        .with_for_update(of=Campaign)
        .execution_options(populate_existing=True)
    )


def _tick_candidates() -> Any:
    """`CampaignRepository.tick_candidates`; parameters `now`, `now_unix`, `progress_before`."""
    now_unix = bindparam("now_unix", type_=Integer)
    progress_before = bindparam("progress_before", type_=DateTime(timezone=True))
    follow_ups_due = (
        select(FollowUpCall.conversation_id)
        .where(
            FollowUpCall.status == "scheduled",
            FollowUpCall.due_at <= bindparam("now", type_=DateTime(timezone=True)),
        )
        .exists()
    )
    one = select(literal(1).label("one")).subquery()
    return (
        select(follow_ups_due, Campaign)
        .select_from(one)
        .outerjoin(
            Campaign,
            (
                (Campaign.status == CampaignStatus.PENDING)
                & Campaign.ready.is_(True)
                & ((Campaign.scheduled_time_unix.is_(None)) | (Campaign.scheduled_time_unix <= now_unix))
            )
            | (Campaign.status == CampaignStatus.RUNNING)
            | (
                Campaign.progress_dirty.is_(True)
                & ((Campaign.last_emitted_at.is_(None)) | (Campaign.last_emitted_at <= progress_before))
            ),
        )
        .order_by(Campaign.created_at_unix, Campaign.campaign_id)
    )


def _due_recipients() -> Any:
    """`RecipientRepository.due`; parameters `campaign_id`, `now`, `limit`, `dials_since`."""
    dialled = aliased(Attempt)
    of_number = (
        dialled.to_number == Recipient.phone_number,
        dialled.dialed_at > bindparam("dials_since", type_=DateTime(timezone=True)),
        dialled.status != AttemptStatus.RATE_LIMITED,
    )
    now = bindparam("now", type_=DateTime(timezone=True))
    return (
        select(
            Recipient,
            select(DoNotCall.phone_number).where(DoNotCall.phone_number == Recipient.phone_number).exists(),
            # The two arrays in the same order, pair by pair.
            select(
                func.array_agg(aggregate_order_by(dialled.campaign_id, dialled.dialed_at, dialled.message_id))
            )
            .where(*of_number)
            .scalar_subquery(),
            select(
                func.array_agg(aggregate_order_by(dialled.dialed_at, dialled.dialed_at, dialled.message_id))
            )
            .where(*of_number)
            .scalar_subquery(),
        )
        .where(
            Recipient.campaign_id == bindparam("campaign_id"),
            Recipient.status == RecipientStatus.SCHEDULED,
            Recipient.position.is_not(None),
            (Recipient.next_attempt_at.is_(None)) | (Recipient.next_attempt_at <= now),
        )
        .order_by(Recipient.position)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(of=Recipient, skip_locked=True)
        .execution_options(populate_existing=True)
    )


def _event_locks() -> Any:
    """`AttemptRepository.lock_for_event`; parameters `campaign_id`, `recipient_id`, `attempt`."""
    campaign_id = bindparam("campaign_id", type_=String)
    return (
        select(
            Campaign,
            Attempt,
            Recipient,
            select(DispatchState.throttle)
            .where(DispatchState.name == DispatchStateRepository.GLOBAL)
            .scalar_subquery(),
        )
        .join(Attempt, Attempt.campaign_id == Campaign.campaign_id)
        .join(Recipient, Recipient.id == Attempt.recipient_pk)
        .where(
            Campaign.campaign_id == campaign_id,
            Attempt.campaign_id == campaign_id,
            Attempt.recipient_id == bindparam("recipient_id"),
            Attempt.attempt == bindparam("attempt", type_=Integer),
        )
        .with_for_update(of=[Campaign, Attempt, Recipient])
        .execution_options(populate_existing=True)
    )


def _count_caller_id() -> Any:
    """`CallerIdRepository.count`; parameters `by_campaign`, `by_number`, `add_dials`, `add_answered`
    (bound names other than the columns': SQLAlchemy keeps those for the SET clause). On the table:
    an ORM UPDATE given parameters would be a bulk update by primary key."""
    table = cast(Table, CampaignCallerId.__table__)
    return (
        update(table)
        .where(
            table.c.campaign_id == bindparam("by_campaign", type_=String),
            table.c.phone_number_id == bindparam("by_number", type_=String),
        )
        .values(
            dials=table.c.dials + bindparam("add_dials", type_=Integer),
            answered=table.c.answered + bindparam("add_answered", type_=Integer),
        )
    )


_DISPATCH_READ = _dispatch_read()
_TICK_CANDIDATES = _tick_candidates()
_DUE_RECIPIENTS = _due_recipients()
_EVENT_LOCKS = _event_locks()
_COUNT_CALLER_ID = _count_caller_id()
