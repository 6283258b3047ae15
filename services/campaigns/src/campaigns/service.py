"""Use cases: campaign commands, telephony outcomes and the scheduler tick. Never commits: every
use case runs in one `UnitOfWork`, so a state change and the messages it causes (events, PlaceCall
commands) are written together through the outbox, or not at all.

Never dial twice: a recipient is dialled only from `scheduled`, in the same transaction that moves
it to `dialing` and inserts the attempt row (unique per campaign/recipient/attempt); the PlaceCall
`message_id` is derived from (campaign, recipient, attempt), and telephony dials each message id at
most once. An attempt without an outcome is never redialled here; after CAMPAIGNS_ATTEMPT_TIMEOUT_S
it is recorded as failed ("no outcome") and not retried: the call may have been placed.

Never skip: every recipient stays `scheduled` until it is dialled or reaches a final state; a
calling window only moves its `next_attempt_at`; an upstream 429 puts it back to wait.

Recipient events: every state of every recipient is announced, so a consumer of the topic builds
it from the events alone. `campaign.recipients_staged` lists every recipient once its last chunk is
in (with its status then: `scheduled`, or final when rejected on arrival or closed before that);
`campaign.recipients_closed` lists the waiting recipients a cancel (or a campaign that could not
run) closes in bulk, in the transaction that closes them; `campaign.recipient_updated` announces
each other change one by one: `dialing` onwards, recipients rejected on arrival (invalid number,
duplicate id or number), `skipped_dnc`, `skipped_duplicate` and recipients deferred by their
calling window.

One person, one call: a number already in the campaign is `skipped_duplicate` when all chunks are
in, and a dial first claims (campaign, number) in `campaign_numbers`, so no second recipient of a
number is ever dialled, whatever order or path its rows came by.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from bus.secrets import Undecryptable, column_context, message_context
from campaigns import callee, domain, metrics, rules
from campaigns.callee_requests import CalleeRequests
from campaigns.domain import CampaignStatus, RecipientStatus
from campaigns.models import Attempt, AttemptStatus, Campaign, CampaignCallerId, Recipient
from campaigns.settings import Settings
from campaigns.uow import UnitOfWork
from contracts.base import Command, CommandFailed, Message
from contracts.campaigns import (
    RECIPIENTS_PER_EVENT,
    AddCampaignRecipients,
    AddDoNotCall,
    AnalysisRule,
    CallerIdStats,
    CallingWindow,
    CampaignRecipient,
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignSnapshot,
    CampaignUpdated,
    CancelCampaign,
    ClosedRecipient,
    DoNotCallAdded,
    DoNotCallRemoved,
    PauseCampaign,
    RemoveDoNotCall,
    ResumeCampaign,
    RetryDelays,
    StagedRecipient,
    SubmitCampaign,
    time_zone_problem,
)
from contracts.quiet_hours import RULES_FILE, load_rules
from contracts.telephony import (
    FINAL_CALL_STATUSES,
    CallDialFailed,
    CallPlaced,
    CallStatusChanged,
    CustomerInfo,
    PhoneNumberDeleted,
    PhoneNumberImported,
    PhoneNumberUpdated,
    PlaceCall,
)

log = structlog.get_logger("campaigns.service")

_ACTIVE = domain.ACTIVE_CAMPAIGN_STATUSES


def _now() -> datetime:
    return datetime.now(UTC)


class CampaignService(CalleeRequests):
    def __init__(self, uow: Callable[[], UnitOfWork], settings: Settings) -> None:
        self._uow = uow
        self._settings = settings
        self.wake = asyncio.Event()
        self._last_timeout_scan = 0.0
        self._rotation = 0
        self._quiet_hours = load_rules(settings.quiet_hours_file or RULES_FILE)

    # ---- helpers -------------------------------------------------------------------------------

    @staticmethod
    def snapshot(
        campaign: Campaign, now: datetime, caller_ids: Sequence[CampaignCallerId] = ()
    ) -> CampaignSnapshot:
        caps = campaign.phone_number_daily_caps or {}
        return CampaignSnapshot(
            phone_numbers=[
                CallerIdStats(
                    phone_number_id=c.phone_number_id,
                    dials=c.dials,
                    answered=c.answered,
                    answer_rate=round(c.answered / c.dials, 4) if c.dials else None,
                    daily_cap=caps.get(c.phone_number_id),
                )
                for c in caller_ids
            ],
            campaign_id=campaign.campaign_id,
            name=campaign.name,
            agent_id=campaign.agent_id,
            phone_number_id=campaign.phone_number_id,
            phone_provider=campaign.phone_provider,
            status=campaign.status,
            created_at_unix=campaign.created_at_unix,
            scheduled_time_unix=campaign.scheduled_time_unix,
            timezone=campaign.timezone,
            retry_count=campaign.retry_count,
            total_calls_scheduled=campaign.total_scheduled,
            total_calls_dispatched=campaign.total_dispatched,
            total_calls_finished=campaign.total_finished,
            last_updated_at_unix=int(now.timestamp()),
            status_reason=campaign.status_reason,
            max_total_minutes=campaign.max_total_minutes,
            call_minutes_used=round(campaign.call_seconds / 60, 2),
        )

    async def _emit_campaign(
        self, uow: UnitOfWork, campaign: Campaign, now: datetime, cause: Message | None = None
    ) -> None:
        campaign.progress_dirty = False
        campaign.last_emitted_at = now
        event = CampaignUpdated(
            campaign=self.snapshot(campaign, now, await uow.caller_ids.stats(campaign.campaign_id)),
            correlation_id=cause.correlation_id if cause else campaign.correlation_id,
            causation_id=cause.message_id if cause else None,
        )
        await uow.publish(event, key=campaign.campaign_id)

    @staticmethod
    async def _emit_recipient(
        uow: UnitOfWork, campaign: Campaign, recipient: Recipient, cause: Message | None = None
    ) -> None:
        next_at = recipient.next_attempt_at if recipient.status == RecipientStatus.SCHEDULED else None
        event = CampaignRecipientUpdated(
            campaign_id=campaign.campaign_id,
            recipient_id=recipient.recipient_id or "",
            position=recipient.position if recipient.position is not None else -1,
            to_number=recipient.phone_number,
            status=recipient.status,
            conversation_id=recipient.conversation_id,
            duration_seconds=recipient.duration_seconds,
            outcome=recipient.outcome,
            retry_count=recipient.retries,
            next_attempt_at_unix=int(next_at.timestamp()) if next_at else None,
            time_zones=list(recipient.time_zones or []),
            reason=recipient.reason,
            waiting_reason=recipient.waiting_reason
            if recipient.status == RecipientStatus.SCHEDULED
            else None,
            callback_at_unix=int(recipient.callback_at.timestamp()) if recipient.callback_at else None,
            callback_requested=recipient.callback_requested,
            correlation_id=cause.correlation_id if cause else campaign.correlation_id,
            causation_id=cause.message_id if cause else None,
        )
        await uow.publish(event, key=campaign.campaign_id)

    async def _announce(
        self,
        uow: UnitOfWork,
        campaign: Campaign,
        changes: Sequence[domain.Change],
        now: datetime,
        cause: Message | None = None,
    ) -> None:
        """Publish what the state machine changed (`domain.Change`s), in order."""
        for change in changes:
            if isinstance(change, domain.RecipientChanged):
                await self._emit_recipient(uow, campaign, change.recipient, cause)
            else:
                await self._emit_campaign(uow, campaign, now, cause)

    @staticmethod
    async def _emit_staged(
        uow: UnitOfWork, campaign: Campaign, cause: Message | None, part_size: int = RECIPIENTS_PER_EVENT
    ) -> None:
        """`campaign.recipients_staged`: every recipient of a campaign just staged, `part_size` a part."""
        parts = -(-campaign.total_scheduled // part_size)
        index = 0
        async for rows in uow.recipients.staged(campaign.campaign_id, part_size):
            event = CampaignRecipientsStaged(
                campaign_id=campaign.campaign_id,
                part_index=index,
                part_count=parts,
                recipients=[
                    StagedRecipient(
                        recipient_id=rid,
                        position=pos,
                        to_number=number,
                        status=status,
                        time_zones=zones,
                        reason=reason,
                    )
                    for rid, pos, number, status, zones, reason in rows
                ],
                correlation_id=cause.correlation_id if cause else campaign.correlation_id,
                causation_id=cause.message_id if cause else None,
            )
            await uow.publish(event, key=campaign.campaign_id)
            index += 1

    @staticmethod
    async def _close_waiting(
        uow: UnitOfWork,
        campaign: Campaign,
        status: str,
        reason: str,
        cause: Message | None,
        part_size: int = RECIPIENTS_PER_EVENT,
    ) -> int:
        """Every waiting recipient → `status` (final) and, once the campaign is staged,
        `campaign.recipients_closed` naming them (before that, `_emit_staged` announces them with
        this status). Returns how many were closed."""
        closed = await uow.recipients.close_scheduled(campaign.campaign_id, status, reason)
        if not campaign.ready or not closed:
            return len(closed)
        parts = -(-len(closed) // part_size)
        for index in range(parts):
            chunk = closed[index * part_size : (index + 1) * part_size]
            event = CampaignRecipientsClosed(
                campaign_id=campaign.campaign_id,
                status=status,
                reason=reason,
                part_index=index,
                part_count=parts,
                recipients=[
                    ClosedRecipient(
                        recipient_id=r.recipient_id or "",
                        position=-1 if r.position is None else r.position,
                        to_number=r.phone_number,
                        retry_count=r.retries,
                        conversation_id=r.conversation_id,
                        duration_seconds=r.duration_seconds,
                        outcome=r.outcome,
                        time_zones=list(r.time_zones or []),
                    )
                    for r in chunk
                ],
                correlation_id=cause.correlation_id if cause else campaign.correlation_id,
                causation_id=cause.message_id if cause else None,
            )
            await uow.publish(event, key=campaign.campaign_id)
        return len(closed)

    async def _failed(self, uow: UnitOfWork, command: Command, key: str, status: int, error: str) -> None:
        log.info("campaigns.command.failed", command_type=command.type, status_code=status, error=error)
        await uow.publish(
            CommandFailed(
                command_type=command.type,
                status_code=status,
                error=error,
                correlation_id=command.correlation_id,
                causation_id=command.message_id,
            ),
            key=key,
        )

    async def _maybe_complete(self, uow: UnitOfWork, campaign: Campaign, now: datetime) -> None:
        """Every recipient final → completed (a cancelled or failed campaign keeps its status)."""
        if not domain.is_done(campaign):
            return
        changes = domain.complete_campaign(campaign, *await uow.recipients.outcomes(campaign.campaign_id))
        log.info("campaigns.campaign.completed", campaign_id=campaign.campaign_id)
        await self._announce(uow, campaign, changes, now)

    # ---- submission ----------------------------------------------------------------------------

    def _rows(
        self,
        campaign_id: str,
        chunk_index: int,
        recipients: list[CampaignRecipient],
        fallback_zone: str | None,
        campaign_status: str | None,
    ) -> list[dict[str, Any]]:
        rows = []
        for offset, recipient in enumerate(recipients):
            number, problem = domain.normalize_number(recipient.phone_number.strip())
            status, reason = domain.status_on_arrival(None if number else problem, campaign_status)
            rows.append(
                {
                    "campaign_id": campaign_id,
                    "chunk_index": chunk_index,
                    "chunk_offset": offset,
                    "given_recipient_id": recipient.recipient_id or None,
                    "phone_number": (number or recipient.phone_number)[:64],
                    "name": recipient.name,
                    "email": recipient.email,
                    "dynamic_variables": recipient.dynamic_variables,
                    "time_zones": list(domain.recipient_time_zones(number, fallback_zone)) if number else [],
                    "status": status,
                    "reason": reason,
                }
            )
        return rows

    async def _store_chunk(
        self,
        uow: UnitOfWork,
        campaign_id: str,
        chunk_index: int,
        recipients: list[CampaignRecipient],
        campaign: Campaign | None,
    ) -> bool:
        """Insert one chunk's recipients in batches; False for a duplicate chunk."""
        if not await uow.chunks.add(campaign_id, chunk_index):
            log.info("campaigns.chunk.duplicate", campaign_id=campaign_id, chunk_index=chunk_index)
            return False
        status = campaign.status if campaign else None
        zone = campaign.timezone if campaign else None
        size = self._settings.insert_batch_size
        for start in range(0, len(recipients), size):
            rows = self._rows(campaign_id, chunk_index, recipients[start : start + size], zone, status)
            for row in rows:
                row["chunk_offset"] += start
            await uow.recipients.add_many(rows)
        return True

    async def _apply_campaign_zone(self, uow: UnitOfWork, campaign: Campaign) -> None:
        """Chunks that came before the submit were stored without the campaign's zone."""
        early = await uow.recipients.waiting_before_submit(campaign.campaign_id)
        size = self._settings.insert_batch_size
        for start in range(0, len(early), size):
            await uow.recipients.set_time_zones(
                [
                    {"id": pk, "time_zones": list(domain.recipient_time_zones(number, campaign.timezone))}
                    for pk, number in early[start : start + size]
                ]
            )

    async def _finalize_if_complete(
        self, uow: UnitOfWork, campaign: Campaign, now: datetime, cause: Message
    ) -> None:
        if campaign.ready:
            return
        received = await uow.chunks.count_below(campaign.campaign_id, campaign.recipient_chunks)
        if received < campaign.recipient_chunks:
            return
        total, final = await uow.recipients.finalize(campaign.campaign_id, campaign.recipient_chunks)
        campaign.ready = True
        campaign.total_scheduled = total
        campaign.total_finished = final
        await self._emit_staged(uow, campaign, cause)
        for rejected in await uow.recipients.final_at_submit(campaign.campaign_id):
            await self._emit_recipient(uow, campaign, rejected, cause)
        log.info("campaigns.campaign.ready", campaign_id=campaign.campaign_id, recipients=total)

    async def submit(self, command: SubmitCampaign) -> None:
        now = _now()
        cid = command.campaign_id
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            zone_problem = time_zone_problem(command.timezone) if command.timezone else None
            if zone_problem:
                await self._failed(uow, command, cid, 422, zone_problem)
                return
            await uow.chunks.lock(cid)
            delays = command.retry_delays or RetryDelays()
            created = await uow.campaigns.add(
                campaign_id=cid,
                name=command.call_name,
                agent_id=command.agent_id,
                phone_number_id=command.phone_number_id,
                phone_provider=command.phone_provider,
                status=CampaignStatus.PENDING,
                created_at_unix=int(now.timestamp()),
                scheduled_time_unix=command.scheduled_time_unix,
                timezone=command.timezone,
                retry_count=command.retry_count,
                retry_delays=delays.model_dump(),
                concurrency_limit=command.concurrency_limit,
                calling_window=command.calling_window.model_dump() if command.calling_window else None,
                max_daily_attempts_per_number=command.max_daily_attempts_per_number,
                phone_number_ids=command.phone_number_ids or None,
                phone_number_daily_caps=command.phone_number_daily_caps or None,
                max_total_minutes=command.max_total_minutes,
                ecommerce_platform=command.ecommerce_platform,
                ecommerce_credentials_encrypted=self._rebind_credentials(
                    command.ecommerce_credentials_encrypted, cid, to_row=True
                ),
                sender_email=command.sender_email,
                analysis_rules=[rule.model_dump() for rule in command.analysis_rules] or None,
                recipient_chunks=command.recipient_chunks,
                ready=False,
                total_scheduled=0,
                total_dispatched=0,
                total_finished=0,
                in_flight=0,
                recent_outcomes="",
                dials_accepted=0,
                fatal_dial_failures=0,
                progress_dirty=False,
                correlation_id=command.correlation_id,
            )
            campaign = await uow.campaigns.get_for_update(cid)
            assert campaign is not None
            if not created:
                # A duplicate submit is a no-op; answer with the campaign as it is.
                log.info("campaigns.submit.duplicate", campaign_id=cid)
                await self._emit_campaign(uow, campaign, now, command)
                return
            await uow.caller_ids.add_pool(cid, self._pool(campaign))
            await self._store_chunk(uow, cid, 0, command.recipients, campaign)
            if campaign.timezone:
                await self._apply_campaign_zone(uow, campaign)
            await self._finalize_if_complete(uow, campaign, now, command)
            await self._emit_campaign(uow, campaign, now, command)
            if campaign.ready and domain.is_due(campaign, now):
                await self._announce(uow, campaign, domain.start_campaign(campaign), now, command)
            await self._maybe_complete(uow, campaign, now)
        log.info("campaigns.submitted", campaign_id=cid, chunks=command.recipient_chunks)
        self.wake.set()

    async def add_recipients(self, command: AddCampaignRecipients) -> None:
        now = _now()
        cid = command.campaign_id
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            await uow.chunks.lock(cid)
            campaign = await uow.campaigns.get_for_update(cid)
            if campaign is not None and campaign.ready:
                log.info("campaigns.chunk.late", campaign_id=cid, chunk_index=command.chunk_index)
                await self._emit_campaign(uow, campaign, now, command)
                return
            if campaign is not None and command.chunk_index >= campaign.recipient_chunks:
                await self._failed(uow, command, cid, 422, "chunk_index beyond recipient_chunks")
                return
            # The chunk may arrive before the submit: it is stored and counted when the submit comes.
            await self._store_chunk(uow, cid, command.chunk_index, command.recipients, campaign)
            if campaign is None:
                return
            await self._finalize_if_complete(uow, campaign, now, command)
            if campaign.ready and campaign.status == CampaignStatus.PENDING and domain.is_due(campaign, now):
                domain.start_campaign(campaign)  # announced just below, with the chunk's answer
            await self._emit_campaign(uow, campaign, now, command)
            await self._maybe_complete(uow, campaign, now)
        self.wake.set()

    # ---- lifecycle commands --------------------------------------------------------------------

    async def cancel(self, command: CancelCampaign) -> None:
        now = _now()
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            campaign = await uow.campaigns.get_for_update(command.campaign_id)
            if campaign is None:
                await self._failed(uow, command, command.campaign_id, 404, "Campaign not found")
                return
            if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.FAILED):
                await self._failed(uow, command, campaign.campaign_id, 409, f"Campaign is {campaign.status}")
                return
            if campaign.status != CampaignStatus.CANCELLED:
                closed = await self._close_waiting(
                    uow, campaign, RecipientStatus.CANCELLED, domain.CANCELLED_REASON, command
                )
                domain.cancel_campaign(campaign, closed)
                log.info("campaigns.campaign.cancelled", campaign_id=campaign.campaign_id, closed=closed)
            await self._emit_campaign(uow, campaign, now, command)

    async def _controllable(
        self, uow: UnitOfWork, command: CancelCampaign | PauseCampaign | ResumeCampaign
    ) -> Campaign | None:
        """The campaign a control command may change, locked; None (after answering) otherwise."""
        if not await uow.claim(command.message_id):
            return None
        campaign = await uow.campaigns.get_for_update(command.campaign_id)
        if campaign is None:
            await self._failed(uow, command, command.campaign_id, 404, "Campaign not found")
            return None
        if campaign.status not in _ACTIVE:
            await self._failed(uow, command, campaign.campaign_id, 409, f"Campaign is {campaign.status}")
            return None
        return campaign

    async def pause(self, command: PauseCampaign) -> None:
        now = _now()
        async with self._uow() as uow:
            campaign = await self._controllable(uow, command)
            if campaign is None:
                return
            await self._announce(
                uow, campaign, domain.pause_campaign(campaign, domain.PAUSED_ON_REQUEST), now, command
            )

    async def resume(self, command: ResumeCampaign) -> None:
        now = _now()
        async with self._uow() as uow:
            campaign = await self._controllable(uow, command)
            if campaign is None:
                return
            await self._announce(uow, campaign, domain.resume_campaign(campaign, now), now, command)
            await self._maybe_complete(uow, campaign, now)
        self.wake.set()

    async def add_do_not_call(self, command: AddDoNotCall) -> None:
        now = _now()
        number = command.phone_number.strip()
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            await uow.do_not_call.upsert(number, command.reason, int(now.timestamp()))
            event = DoNotCallAdded(
                phone_number=number,
                reason=command.reason,
                added_at_unix=int(now.timestamp()),
                source=command.source,
                conversation_id=command.conversation_id,
                campaign_id=command.campaign_id,
                recipient_id=command.recipient_id,
                correlation_id=command.correlation_id,
                causation_id=command.message_id,
            )
            await uow.publish(event, key=number)
            await self._opted_out(uow, command, now)

    async def remove_do_not_call(self, command: RemoveDoNotCall) -> None:
        number = command.phone_number.strip()
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            await uow.do_not_call.remove(number)
            event = DoNotCallRemoved(
                phone_number=number, correlation_id=command.correlation_id, causation_id=command.message_id
            )
            await uow.publish(event, key=number)

    # ---- telephony events ----------------------------------------------------------------------

    async def _locked_attempt(
        self, uow: UnitOfWork, event: CallPlaced | CallDialFailed | CallStatusChanged
    ) -> tuple[Campaign, Attempt, Recipient] | None:
        """The campaign, attempt and recipient an event is about, locked in that order; None (logged)
        for events of other callers, unknown attempts or attempts no longer current."""
        if event.campaign_id is None or event.recipient_id is None or event.attempt is None:
            return None
        found = await uow.attempts.find(event.campaign_id, event.recipient_id, event.attempt)
        if found is None:
            log.warning(
                "campaigns.event.unknown_attempt",
                event_type=event.type,
                campaign_id=event.campaign_id,
                recipient_id=event.recipient_id,
                attempt=event.attempt,
            )
            return None
        campaign = await uow.campaigns.get_for_update(found.campaign_id)
        attempt = await uow.attempts.get_for_update(found.message_id)
        recipient = await uow.recipients.get_for_update(found.recipient_pk)
        if campaign is None or attempt is None or recipient is None:
            return None
        if attempt.status not in (AttemptStatus.DIALING, AttemptStatus.IN_PROGRESS):
            log.info(
                "campaigns.event.attempt_already_ended",
                event_type=event.type,
                message_id=attempt.message_id,
                status=attempt.status,
            )
            return None
        if recipient.attempts != attempt.attempt or recipient.status not in domain.IN_FLIGHT_STATUSES:
            log.warning("campaigns.event.superseded_attempt", message_id=attempt.message_id)
            return None
        return campaign, attempt, recipient

    async def call_placed(self, event: CallPlaced) -> None:
        async with self._uow() as uow:
            if not await uow.claim(event.message_id):
                return
            found = await self._locked_attempt(uow, event)
            if found is None:
                return
            campaign, attempt, recipient = found
            attempt.status = AttemptStatus.IN_PROGRESS
            attempt.conversation_id = event.conversation_id
            changes = domain.call_in_progress(recipient, event.conversation_id)
            campaign.dials_accepted += 1
            limit = campaign.concurrency_limit or self._settings.default_concurrency
            campaign.throttle = domain.throttle_on_success(campaign.throttle, limit)
            if await uow.dispatch.global_throttle() is not None:
                shared = await uow.dispatch.global_for_update()
                shared.throttle = domain.throttle_on_success(
                    shared.throttle, self._settings.global_concurrency
                )
            await self._announce(uow, campaign, changes, _now(), event)

    async def call_dial_failed(self, event: CallDialFailed) -> None:
        now = _now()
        async with self._uow() as uow:
            if not await uow.claim(event.message_id):
                return
            found = await self._locked_attempt(uow, event)
            if found is None:
                return
            campaign, attempt, recipient = found
            if event.status_code == domain.RATE_LIMITED:
                await self._rate_limited(uow, campaign, attempt, recipient, now, event)
            else:
                if event.status_code in domain.FATAL_DIAL_STATUS_CODES and event.refusal is None:
                    campaign.fatal_dial_failures += 1
                reason = f"{event.status_code} {event.error}"
                if event.refusal is not None and event.detail:
                    reason = f"{event.error}: {event.detail}"
                await self._finish_attempt(
                    uow,
                    campaign,
                    attempt,
                    recipient,
                    now,
                    event,
                    call_status="failed",
                    reason=reason,
                    retryable=event.refusal is None,
                )
                await self._count_refusal(uow, campaign, now, event.refusal, reason)
                if campaign.status in _ACTIVE and domain.could_not_run(
                    campaign.dials_accepted, campaign.fatal_dial_failures, self._settings.fatal_dial_failures
                ):
                    await self._fail_campaign(uow, campaign, now, f"Telephony refused every dial: {reason}")
        self.wake.set()

    async def call_status_changed(self, event: CallStatusChanged) -> None:
        now = _now()
        async with self._uow() as uow:
            if not await uow.claim(event.message_id):
                return
            found = await self._locked_attempt(uow, event)
            if found is None:
                return
            campaign, attempt, recipient = found
            if event.status not in FINAL_CALL_STATUSES:
                if event.status == "in_progress" and recipient.status == RecipientStatus.DIALING:
                    attempt.status = AttemptStatus.IN_PROGRESS
                    attempt.conversation_id = event.conversation_id
                    changes = domain.call_in_progress(recipient, event.conversation_id)
                    await self._announce(uow, campaign, changes, now, event)
                return
            attempt.conversation_id = event.conversation_id
            recipient.conversation_id = event.conversation_id
            recipient.duration_seconds = event.duration_seconds
            recipient.outcome = event.outcome
            campaign.call_seconds += event.duration_seconds or 0
            campaign.longest_call_s = max(campaign.longest_call_s, event.duration_seconds or 0)
            if event.status == "completed" and attempt.phone_number_id is not None:
                await uow.caller_ids.count(campaign.campaign_id, attempt.phone_number_id, answered=1)
            await self._finish_attempt(
                uow,
                campaign,
                attempt,
                recipient,
                now,
                event,
                call_status=event.status,
                reason=event.reason,
                retryable=event.refusal is None,
                data_collection=event.data_collection,
            )
            await self._count_refusal(uow, campaign, now, event.refusal, event.reason)
        self.wake.set()

    async def _count_refusal(
        self, uow: UnitOfWork, campaign: Campaign, now: datetime, refusal: str | None, reason: str | None
    ) -> None:
        """A run of carrier refusals that blame our configuration fails the campaign: every further
        dial would be refused alike. Any other outcome ends the run."""
        if refusal != "configuration":
            campaign.configuration_refusals = 0
            return
        campaign.configuration_refusals += 1
        if campaign.status in _ACTIVE and domain.configuration_refused(
            campaign.configuration_refusals, self._settings.configuration_refusals
        ):
            await self._fail_campaign(uow, campaign, now, reason or "The carrier refused the calls")

    async def _rate_limited(
        self,
        uow: UnitOfWork,
        campaign: Campaign,
        attempt: Attempt,
        recipient: Recipient,
        now: datetime,
        cause: Message,
    ) -> None:
        """Upstream 429: nobody was called. Not an outcome: the recipient waits and is dialled again
        (as a new attempt number, since telephony never redials a message id); dialling slows down."""
        attempt.status = AttemptStatus.RATE_LIMITED
        attempt.finished_at = now
        domain.end_attempt(campaign)
        if campaign.status not in _ACTIVE:
            # Cancelled (or failed) meanwhile: nobody was called and nobody will be.
            status, reason = domain.closed_by_campaign(campaign)
            await self._announce(
                uow, campaign, domain.finish_recipient(campaign, recipient, status, reason), now, cause
            )
            return
        changes = domain.wait_again(recipient, now + timedelta(seconds=self._settings.rate_limit_backoff_s))
        limit = campaign.concurrency_limit or self._settings.default_concurrency
        hold = self._settings.rate_limit_backoff_s
        campaign.throttle, campaign.throttled_at = domain.throttle_on_rate_limit(
            campaign.throttle,
            limit,
            campaign.in_flight + 1,
            decreased_at=campaign.throttled_at,
            now=now,
            hold_s=hold,
        )
        used = await uow.campaigns.total_in_flight()
        shared = await uow.dispatch.global_for_update()
        shared.throttle, shared.throttled_at = domain.throttle_on_rate_limit(
            shared.throttle,
            self._settings.global_concurrency,
            used + 1,
            decreased_at=shared.throttled_at,
            now=now,
            hold_s=hold,
        )
        metrics.RATE_LIMITED.inc()
        log.info(
            "campaigns.dial.rate_limited",
            campaign_id=campaign.campaign_id,
            recipient_id=recipient.recipient_id,
            throttle=campaign.throttle,
        )
        await self._announce(uow, campaign, changes, now, cause)

    async def _finish_attempt(
        self,
        uow: UnitOfWork,
        campaign: Campaign,
        attempt: Attempt,
        recipient: Recipient,
        now: datetime,
        cause: Message | None,
        *,
        call_status: str,
        reason: str | None,
        retryable: bool = True,
        data_collection: dict[str, Any] | None = None,
    ) -> None:
        """Record an attempt's outcome: retry later or finish the recipient; counters, auto-pause
        and completion in the same transaction. A carrier refusal is not `retryable`. What the
        callee asked for (opt-out, callback) and the campaign's analysis rules come first
        (`callee.after_call`)."""
        attempt.status = AttemptStatus.ENDED
        attempt.call_status = call_status
        attempt.reason = reason
        attempt.finished_at = now
        domain.end_attempt(campaign)
        decision = domain.decide_outcome(
            call_status,
            recipient.retries,
            campaign.retry_count,
            RetryDelays.model_validate(campaign.retry_delays),
            delay_scale=self._settings.retry_delay_scale,
            may_retry=retryable and campaign.status in _ACTIVE,
        )
        said = callee.after_call(
            call_status=call_status,
            opted_out=recipient.opted_out,
            callback_pending=recipient.callback_pending,
            callback_at=recipient.callback_at,
            rules=[AnalysisRule.model_validate(rule) for rule in campaign.analysis_rules or []],
            data_collection=data_collection or {},
            retries_used=recipient.retries,
            retry_count=campaign.retry_count,
            may_retry=retryable and campaign.status in _ACTIVE,
            now=now,
            delay_scale=self._settings.retry_delay_scale,
        )
        if said is not None and said.next_attempt_at is not None:
            changes = domain.retry_recipient(
                campaign, recipient, said.next_attempt_at, said.reason, counts_as_retry=said.counts_as_retry
            )
        elif said is not None:
            changes = domain.finish_recipient(campaign, recipient, said.status, said.reason)
        elif decision.retry_in_s is None:
            changes = domain.finish_recipient(campaign, recipient, decision.status, reason)
        else:
            at = now + timedelta(seconds=decision.retry_in_s)
            changes = domain.retry_recipient(campaign, recipient, at, reason)
        window = self._settings.failure_window
        domain.record_outcome(campaign, call_status, window)
        paused = domain.auto_pause_if_failing(campaign, window, self._settings.failure_pause_ratio)
        if paused:
            log.warning("campaigns.campaign.auto_paused", campaign_id=campaign.campaign_id)
        await self._announce(uow, campaign, changes, now, cause)
        await self._announce(uow, campaign, paused, now)
        await self._maybe_complete(uow, campaign, now)

    async def _fail_campaign(self, uow: UnitOfWork, campaign: Campaign, now: datetime, reason: str) -> None:
        closed = await self._close_waiting(uow, campaign, RecipientStatus.FAILED, reason, None)
        domain.fail_campaign(campaign, reason, closed)
        log.warning("campaigns.campaign.failed", campaign_id=campaign.campaign_id, reason=reason)
        await self._emit_campaign(uow, campaign, now)

    async def phone_number_changed(
        self, event: PhoneNumberImported | PhoneNumberUpdated | PhoneNumberDeleted
    ) -> None:
        async with self._uow() as uow:
            if isinstance(event, PhoneNumberDeleted):
                await uow.phone_numbers.remove(event.phone_number_id)
            else:
                await uow.phone_numbers.upsert(
                    event.phone.phone_number_id, event.phone.provider, event.phone.phone_number
                )

    # ---- the scheduler -------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Tick every CAMPAIGNS_TICK_S, or earlier when an event freed capacity or added work."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("campaigns.scheduler.tick_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self._settings.tick_s)
            self.wake.clear()

    async def tick(self, now: datetime | None = None) -> int:
        """One scheduler pass; returns the number of PlaceCall commands dispatched."""
        now = now or _now()
        await self._start_due(now)
        placed = 0
        async with self._uow() as uow:
            running = list(await uow.campaigns.running_ids())
        metrics.CAMPAIGNS_RUNNING.set(len(running))
        # Rotate the starting campaign each tick so freed global capacity is shared round-robin.
        self._rotation += 1
        if running:
            shift = self._rotation % len(running)
            running = running[shift:] + running[:shift]
        for campaign_id in running:
            placed += await self._dispatch(campaign_id, now)
        placed += await self._dial_follow_ups(now)
        if now.timestamp() - self._last_timeout_scan >= min(5.0, self._settings.attempt_timeout_s):
            self._last_timeout_scan = now.timestamp()
            await self._time_out_attempts(now)
        await self._emit_progress(now)
        return placed

    async def _start_due(self, now: datetime) -> None:
        async with self._uow() as uow:
            due = await uow.campaigns.due_to_start(int(now.timestamp()))
        for campaign_id in due:
            async with self._uow() as uow:
                campaign = await uow.campaigns.get_for_update(campaign_id)
                if campaign is None or campaign.status != CampaignStatus.PENDING or not campaign.ready:
                    continue
                changes = domain.start_campaign(campaign)
                log.info("campaigns.campaign.started", campaign_id=campaign_id)
                await self._announce(uow, campaign, changes, now)
                await self._maybe_complete(uow, campaign, now)

    async def _dispatch(self, campaign_id: str, now: datetime) -> int:
        """Dial due recipients of one campaign within its and the global concurrency budget."""
        placed = 0
        for _ in range(10):  # a few rounds when recipients were skipped or deferred by a window
            async with self._uow() as uow:
                await uow.dispatch.lock_dispatch()
                campaign = await uow.campaigns.get_for_update(campaign_id)
                if campaign is None or campaign.status != CampaignStatus.RUNNING:
                    return placed
                limit = campaign.concurrency_limit or self._settings.default_concurrency
                global_limit = domain.effective_limit(
                    self._settings.global_concurrency, await uow.dispatch.global_throttle()
                )
                budget = min(
                    domain.effective_limit(limit, campaign.throttle) - campaign.in_flight,
                    global_limit - await uow.campaigns.total_in_flight(),
                    self._settings.dispatch_batch_size,
                )
                if budget <= 0:
                    return placed
                due = await uow.recipients.due(campaign_id, now, budget)
                if not due:
                    return placed
                listed = await uow.do_not_call.listed([r.phone_number for r in due])
                dials = await uow.attempts.recent_dials([r.phone_number for r in due], now - rules.CAP_PERIOD)
                window = (
                    CallingWindow.model_validate(campaign.calling_window) if campaign.calling_window else None
                )
                pool_ids = self._pool(campaign)
                caps = campaign.phone_number_daily_caps or {}
                known = await uow.phone_numbers.known(pool_ids)
                used = (
                    {c.phone_number_id: c.dials for c in await uow.caller_ids.stats(campaign_id)}
                    if len(pool_ids) > 1
                    else {}
                )
                caller_dials = await uow.attempts.latest_caller_dials(
                    {pid: caps[pid] for pid in pool_ids if pid in caps}, now - rules.CAP_PERIOD
                )
                dialled_now = 0
                for recipient in due:
                    if recipient.phone_number in listed:
                        changes = domain.finish_recipient(
                            campaign,
                            recipient,
                            RecipientStatus.SKIPPED_DNC,
                            "Number is on the do-not-call list",
                        )
                        await self._announce(uow, campaign, changes, now)
                        continue
                    hold = self._hold(campaign, recipient, window, dials, now)
                    if hold is not None:
                        if hold.at is None:
                            status, reason = RecipientStatus.FAILED, hold.reason
                            changes = domain.finish_recipient(campaign, recipient, status, reason)
                        else:
                            # Reported (with its zones and reason), so a recipient held back is
                            # visibly waiting; once per hold, as it is not due again before.
                            metrics.HELD.labels(hold.waiting_reason).inc()
                            changes = domain.hold_recipient(recipient, hold.at, hold.waiting_reason)
                        await self._announce(uow, campaign, changes, now)
                        continue
                    caller = self._caller_id(campaign, pool_ids, known, caller_dials, used, recipient, now)
                    if isinstance(caller, datetime):
                        metrics.HELD.labels(rules.CALLER_ID_CAP).inc()
                        changes = domain.hold_recipient(recipient, caller, rules.CALLER_ID_CAP)
                        await self._announce(uow, campaign, changes, now)
                        continue
                    over = rules.budget_problem(
                        campaign.max_total_minutes,
                        campaign.call_seconds,
                        campaign.in_flight,
                        campaign.longest_call_s,
                        self._settings.budget_call_estimate_s,
                    )
                    if over is not None:
                        log.warning("campaigns.campaign.budget_paused", campaign_id=campaign.campaign_id)
                        await self._announce(uow, campaign, domain.pause_campaign(campaign, over), now)
                        break
                    owner = await uow.numbers.claim(
                        campaign.campaign_id, recipient.phone_number, recipient.id
                    )
                    if owner != recipient.id:
                        log.warning(
                            "campaigns.recipient.duplicate_number",
                            campaign_id=campaign.campaign_id,
                            recipient_id=recipient.recipient_id,
                        )
                        changes = domain.finish_recipient(
                            campaign,
                            recipient,
                            RecipientStatus.SKIPPED_DUPLICATE,
                            "Same phone number as another recipient of the campaign: dialled once",
                        )
                        await self._announce(uow, campaign, changes, now)
                        continue
                    provider = known.get(caller.phone_number_id, ("", None))[0] or campaign.phone_provider
                    if caller.phone_number_id == campaign.phone_number_id and campaign.phone_provider:
                        provider = campaign.phone_provider
                    await self._dial(
                        uow, campaign, recipient, caller.phone_number_id, provider or "twilio", now
                    )
                    caller_dials.setdefault(caller.phone_number_id, []).append(now)
                    used[caller.phone_number_id] = used.get(caller.phone_number_id, 0) + 1
                    dials.setdefault(recipient.phone_number, []).append((campaign.campaign_id, now))
                    dialled_now += 1
                await self._maybe_complete(uow, campaign, now)
            placed += dialled_now
            metrics.ATTEMPTS_DISPATCHED.inc(dialled_now)
            if dialled_now == len(due):
                return placed
        return placed

    @staticmethod
    def _pool(campaign: Campaign) -> list[str]:
        """The campaign's caller IDs: `phone_number_id` first, then `phone_number_ids` (once each)."""
        return list(dict.fromkeys([campaign.phone_number_id, *(campaign.phone_number_ids or [])]))

    @staticmethod
    def _caller_id(
        campaign: Campaign,
        pool_ids: list[str],
        known: dict[str, tuple[str, str | None]],
        caller_dials: dict[str, list[datetime]],
        used: dict[str, int],
        recipient: Recipient,
        now: datetime,
    ) -> rules.CallerId | datetime:
        """The pool number to dial `recipient` from, or when one is next under its daily cap
        (`caller_dials`: each capped number's latest dials; `used`: the campaign's dials per number)."""
        caps = campaign.phone_number_daily_caps or {}
        pool = [
            rules.CallerId(
                pid, known.get(pid, ("", None))[1], caps.get(pid), caller_dials.get(pid, []), used.get(pid, 0)
            )
            for pid in pool_ids
        ]
        return rules.choose_caller_id(pool, recipient.phone_number, now)

    def _hold(
        self,
        campaign: Campaign,
        recipient: Recipient,
        window: CallingWindow | None,
        dials: dict[str, list[tuple[str, datetime]]],
        now: datetime,
    ) -> rules.Hold | None:
        """What holds a due recipient back now (quiet hours, the campaign's window, the caps), if
        anything; `dials` are (campaign_id, dialed_at) per number over the last 24 h."""
        mine = dials.get(recipient.phone_number, [])
        return rules.hold_for(
            now,
            recipient.phone_number,
            recipient.time_zones,
            window,
            dials_everywhere=[at for _, at in mine],
            platform_cap=self._settings.max_attempts_per_number_24h,
            dials_in_campaign=[at for cid, at in mine if cid == campaign.campaign_id],
            campaign_cap=campaign.max_daily_attempts_per_number,
            quiet_hours=self._quiet_hours,
        )

    async def _dial(
        self,
        uow: UnitOfWork,
        campaign: Campaign,
        recipient: Recipient,
        phone_number_id: str,
        provider: str,
        now: datetime,
    ) -> None:
        """Attempt n: the attempt row, the recipient `dialing` and the PlaceCall, in one transaction."""
        assert recipient.recipient_id is not None
        number = recipient.attempts + 1
        message_id = domain.attempt_message_id(campaign.campaign_id, recipient.recipient_id, number)
        created = await uow.attempts.add(
            message_id=message_id,
            campaign_id=campaign.campaign_id,
            recipient_id=recipient.recipient_id,
            attempt=number,
            recipient_pk=recipient.id,
            to_number=recipient.phone_number,
            phone_number_id=phone_number_id,
            status=AttemptStatus.DIALING,
            dialed_at=now,
        )
        if not created:  # cannot happen while the recipient row is locked; never dial twice anyway
            log.error("campaigns.dial.attempt_exists", message_id=message_id)
            return
        changes = domain.start_attempt(campaign, recipient, number)
        await uow.caller_ids.count(campaign.campaign_id, phone_number_id, dials=1)
        info = None
        if recipient.name or recipient.email:
            info = CustomerInfo(name=recipient.name, email=recipient.email, phone=recipient.phone_number)
        command = PlaceCall(
            message_id=message_id,
            provider=provider,
            agent_id=campaign.agent_id,
            agent_phone_number_id=phone_number_id,
            to_number=recipient.phone_number,
            dynamic_variables=recipient.dynamic_variables or {},
            customer_info=info,
            ecommerce_platform=campaign.ecommerce_platform,
            ecommerce_credentials_encrypted=self._rebind_credentials(
                campaign.ecommerce_credentials_encrypted, campaign.campaign_id, to_row=False
            ),
            sender_email=campaign.sender_email,
            campaign_id=campaign.campaign_id,
            recipient_id=recipient.recipient_id,
            attempt=number,
            calling_window=CallingWindow.model_validate(campaign.calling_window)
            if campaign.calling_window
            else None,
            time_zones=list(recipient.time_zones or []),
            correlation_id=campaign.correlation_id,
        )
        await uow.send_command(command, key=message_id)
        await self._announce(uow, campaign, changes, now)

    def _rebind_credentials(self, token: str | None, campaign_id: str, *, to_row: bool) -> str | None:
        """Store credentials moved between the command field and the campaign's row (each ciphertext
        is bound to where it lives; the clear value stays inside bus.secrets). None when no
        configured key reads them: the calls then go without a store, as without credentials."""
        if token is None:
            return None
        field, row = (
            message_context("ecommerce_credentials_encrypted"),
            column_context(Campaign.ecommerce_credentials_encrypted, campaign_id),
        )
        try:
            return self._settings.keyring.rebind(
                token, from_context=field if to_row else row, to_context=row if to_row else field
            )
        except Undecryptable:
            log.warning("campaigns.store_credentials_undecryptable", campaign_id=campaign_id)
            return None

    async def _time_out_attempts(self, now: datetime) -> None:
        cutoff = now - timedelta(seconds=self._settings.attempt_timeout_s)
        async with self._uow() as uow:
            stale = [(a.message_id, a.campaign_id) for a in await uow.attempts.timed_out(cutoff, 100)]
        for message_id, campaign_id in stale:
            async with self._uow() as uow:
                campaign = await uow.campaigns.get_for_update(campaign_id)
                attempt = await uow.attempts.get_for_update(message_id)
                if campaign is None or attempt is None:
                    continue
                if attempt.status not in (AttemptStatus.DIALING, AttemptStatus.IN_PROGRESS):
                    continue
                recipient = await uow.recipients.get_for_update(attempt.recipient_pk)
                if recipient is None:
                    continue
                log.warning("campaigns.attempt.timed_out", message_id=message_id)
                if recipient.attempts != attempt.attempt or recipient.status not in domain.IN_FLIGHT_STATUSES:
                    attempt.status = AttemptStatus.ENDED
                    attempt.reason = "no outcome"
                    attempt.finished_at = now
                    continue
                # Its outcome is unknown, not a failure: the call may have been placed, so it is
                # never retried as a new attempt (that could ring the person twice).
                await self._finish_attempt(
                    uow,
                    campaign,
                    attempt,
                    recipient,
                    now,
                    None,
                    call_status="failed",
                    reason="no outcome",
                    retryable=False,
                )

    async def _emit_progress(self, now: datetime) -> None:
        """Coalesced progress: at most one snapshot per campaign per CAMPAIGNS_PROGRESS_INTERVAL_S."""
        before = now - timedelta(seconds=self._settings.progress_interval_s)
        async with self._uow() as uow:
            due = await uow.campaigns.progress_due(before)
        for campaign_id in due:
            async with self._uow() as uow:
                campaign = await uow.campaigns.get_for_update(campaign_id)
                if campaign is None or not campaign.progress_dirty:
                    continue
                await self._emit_campaign(uow, campaign, now)
