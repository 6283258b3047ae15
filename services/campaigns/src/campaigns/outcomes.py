"""Use cases of telephony's events: a campaign attempt placed, refused or ended, and the
phone-number provider projection; and the attempts that never got an outcome (a scheduler step).
Never commits; each runs in one unit of work.

Telephony's events are consumed in batches (`handlers.register`): the units of work of a batch's
messages share one transaction, committed by the bus after the last one. So nothing here has an
effect outside the database before that commit except through `bus.batch.after_commit` (the
scheduler's wake-up: woken earlier, it would read the state before the outcome and sleep again).

Locks: each event locks its campaign, then the attempt, then the recipient (`_locked_attempt`), and
last the shared dispatch row (`DispatchStateRepository.global_for_update`), the order every other
transaction of this service takes them in (the scheduler, commands and timeouts each lock ONE
campaign per transaction and never the shared row after another campaign). A batch holds the locks
of all its events until its commit, so it may hold several campaigns, and the shared row before a
later event's campaign. In one replica nothing else does (one consumer per subscription handles its
batches one after another), so no cycle. Across replicas (each consuming other partitions) two
batches, or a batch and one event, can wait for each other: PostgreSQL then aborts one transaction
after `deadlock_timeout` (1 s by default). An aborted batch is handled again one message at a time,
and a single event holds one campaign, so it waits for at most the other batch's commit, never in
a cycle with another single event: progress is made either way, and an aborted single event is
retried (`BUS_MAX_ATTEMPTS`) with its effect still not applied.

Never lose an outcome, never dial twice: an event changes only the attempt it names, and only while
that attempt is the recipient's current one and still in flight (events are redelivered and can
come late). An outcome retries the recipient later or finishes it (`domain`), with the campaign's
counters, failure window, auto-pause and completion in the same transaction. An upstream 429 is
not an outcome (nobody was called): the recipient waits and dialling slows down (AIMD). An attempt
without an outcome is not retried: the call may have been placed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog

from bus import batch
from campaigns import announce, callee, domain, metrics
from campaigns.context import Deps
from campaigns.domain import AttemptStatus, RecipientStatus
from campaigns.models import Attempt, Campaign, Recipient
from campaigns.uow import UnitOfWork
from contracts.base import Message
from contracts.campaigns import AnalysisRule, RetryDelays
from contracts.telephony import (
    FINAL_CALL_STATUSES,
    CallDialFailed,
    CallPlaced,
    CallStatusChanged,
    PhoneNumberDeleted,
    PhoneNumberImported,
    PhoneNumberUpdated,
)

log = structlog.get_logger("campaigns.outcomes")


async def _locked_attempt(
    uow: UnitOfWork, event: CallPlaced | CallDialFailed | CallStatusChanged
) -> tuple[Campaign, Attempt, Recipient, float | None] | None:
    """The campaign, attempt and recipient an event is about, locked in that order, and the shared
    throttle; None (logged) for events of other callers, unknown attempts or attempts no longer
    current."""
    if event.campaign_id is None or event.recipient_id is None or event.attempt is None:
        return None
    # The lock order of `_lock`, in one statement.
    found = await uow.attempts.lock_for_event(event.campaign_id, event.recipient_id, event.attempt)
    if found is None:
        if not await uow.attempts.exists(event.campaign_id, event.recipient_id, event.attempt):
            log.warning(
                "campaigns.event.unknown_attempt",
                event_type=event.type,
                campaign_id=event.campaign_id,
                recipient_id=event.recipient_id,
                attempt=event.attempt,
            )
        return None
    _, attempt, recipient, _ = found
    if not domain.is_open(attempt):
        log.info(
            "campaigns.event.attempt_already_ended",
            event_type=event.type,
            message_id=attempt.message_id,
            status=attempt.status,
        )
        return None
    if not domain.is_current(attempt, recipient):
        log.warning("campaigns.event.superseded_attempt", message_id=attempt.message_id)
        return None
    return found


async def _lock(
    uow: UnitOfWork, campaign_id: str, message_id: str
) -> tuple[Campaign, Attempt, Recipient] | None:
    """The campaign, the attempt and its recipient locked in that order (the order every writer
    of a campaign's rows keeps, so they cannot deadlock); None when one of them is gone."""
    campaign = await uow.campaigns.get_for_update(campaign_id)
    attempt = await uow.attempts.get_for_update(message_id)
    if campaign is None or attempt is None:
        return None
    recipient = await uow.recipients.get_for_update(attempt.recipient_pk)
    if recipient is None:
        return None
    return campaign, attempt, recipient


async def call_placed(deps: Deps, event: CallPlaced) -> None:
    """The dial was accepted: the recipient `in_progress`; dialling speeds up again (AIMD)."""
    async with deps.uow() as uow:
        if not await uow.claim(event.message_id):
            return
        found = await _locked_attempt(uow, event)
        if found is None:
            return
        campaign, attempt, recipient, global_throttle = found
        changes = domain.call_in_progress(recipient, attempt, event.conversation_id)
        campaign.dials_accepted += 1
        limit = campaign.concurrency_limit or deps.settings.default_concurrency
        campaign.throttle = domain.throttle_on_success(campaign.throttle, limit)
        if global_throttle is not None:
            shared = await uow.dispatch.global_for_update()
            shared.throttle = domain.throttle_on_success(shared.throttle, deps.settings.global_concurrency)
        await announce.changes(uow, campaign, changes, deps.clock(), event)


async def call_dial_failed(deps: Deps, event: CallDialFailed) -> None:
    """The dial was refused: a 429 puts the recipient back to wait; any other status is the
    attempt's outcome (`failed`), and refusals that blame the campaign fail it."""
    now = deps.clock()
    async with deps.uow() as uow:
        if not await uow.claim(event.message_id):
            return
        found = await _locked_attempt(uow, event)
        if found is None:
            return
        campaign, attempt, recipient, _ = found
        if event.status_code == domain.RATE_LIMITED:
            await _rate_limited(deps, uow, campaign, attempt, recipient, now, event)
        else:
            if event.status_code in domain.FATAL_DIAL_STATUS_CODES and event.refusal is None:
                campaign.fatal_dial_failures += 1
            reason = domain.dial_failure_reason(event.status_code, event.error, event.detail, event.refusal)
            await _finish_attempt(
                deps,
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
            await _count_refusal(deps, uow, campaign, now, event.refusal, reason)
            if campaign.status in domain.ACTIVE_CAMPAIGN_STATUSES and domain.could_not_run(
                campaign.dials_accepted, campaign.fatal_dial_failures, deps.settings.fatal_dial_failures
            ):
                await _fail_campaign(uow, campaign, now, f"Telephony refused every dial: {reason}")
    batch.after_commit(deps.wake.set)


async def call_status_changed(deps: Deps, event: CallStatusChanged) -> None:
    """The call was answered (`in_progress`) or ended: its outcome retries or finishes the recipient."""
    now = deps.clock()
    async with deps.uow() as uow:
        if not await uow.claim(event.message_id):
            return
        found = await _locked_attempt(uow, event)
        if found is None:
            return
        campaign, attempt, recipient, _ = found
        if event.status not in FINAL_CALL_STATUSES:
            if event.status == "in_progress" and recipient.status == RecipientStatus.DIALING:
                changes = domain.call_in_progress(recipient, attempt, event.conversation_id)
                await announce.changes(uow, campaign, changes, now, event)
            return
        domain.record_call(
            campaign, attempt, recipient, event.conversation_id, event.duration_seconds, event.outcome
        )
        if event.status == "completed" and attempt.phone_number_id is not None:
            await uow.caller_ids.count(campaign.campaign_id, attempt.phone_number_id, answered=1)
        await _finish_attempt(
            deps,
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
        await _count_refusal(deps, uow, campaign, now, event.refusal, event.reason)
    batch.after_commit(deps.wake.set)


async def _count_refusal(
    deps: Deps, uow: UnitOfWork, campaign: Campaign, now: datetime, refusal: str | None, reason: str | None
) -> None:
    """A run of carrier refusals that blame our configuration fails the campaign: every further
    dial would be refused alike. Any other outcome ends the run."""
    if refusal != "configuration":
        campaign.configuration_refusals = 0
        return
    campaign.configuration_refusals += 1
    if campaign.status in domain.ACTIVE_CAMPAIGN_STATUSES and domain.configuration_refused(
        campaign.configuration_refusals, deps.settings.configuration_refusals
    ):
        await _fail_campaign(uow, campaign, now, reason or "The carrier refused the calls")


async def _rate_limited(
    deps: Deps,
    uow: UnitOfWork,
    campaign: Campaign,
    attempt: Attempt,
    recipient: Recipient,
    now: datetime,
    cause: Message,
) -> None:
    """Upstream 429: nobody was called. Not an outcome: the recipient waits and is dialled again
    (as a new attempt number, since telephony never redials a message id); dialling slows down."""
    domain.end_attempt(campaign, attempt, now, status=AttemptStatus.RATE_LIMITED)
    if campaign.status not in domain.ACTIVE_CAMPAIGN_STATUSES:
        # Cancelled (or failed) meanwhile: nobody was called and nobody will be.
        status, reason = domain.closed_by_campaign(campaign)
        await announce.changes(
            uow, campaign, domain.finish_recipient(campaign, recipient, status, reason), now, cause
        )
        return
    changes = domain.wait_again(recipient, now + timedelta(seconds=deps.settings.rate_limit_backoff_s))
    limit = campaign.concurrency_limit or deps.settings.default_concurrency
    hold = deps.settings.rate_limit_backoff_s
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
        deps.settings.global_concurrency,
        used + 1,
        decreased_at=shared.throttled_at,
        now=now,
        hold_s=hold,
    )
    batch.after_commit(metrics.RATE_LIMITED.inc)  # not again when a rolled-back batch is redone
    log.info(
        "campaigns.dial.rate_limited",
        campaign_id=campaign.campaign_id,
        recipient_id=recipient.recipient_id,
        throttle=campaign.throttle,
    )
    await announce.changes(uow, campaign, changes, now, cause)


async def _finish_attempt(
    deps: Deps,
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
    domain.end_attempt(campaign, attempt, now, call_status=call_status, reason=reason)
    decision = domain.decide_outcome(
        call_status,
        recipient.retries,
        campaign.retry_count,
        RetryDelays.model_validate(campaign.retry_delays),
        delay_scale=deps.settings.retry_delay_scale,
        may_retry=retryable and campaign.status in domain.ACTIVE_CAMPAIGN_STATUSES,
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
        may_retry=retryable and campaign.status in domain.ACTIVE_CAMPAIGN_STATUSES,
        now=now,
        delay_scale=deps.settings.retry_delay_scale,
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
    window = deps.settings.failure_window
    domain.record_outcome(campaign, call_status, window)
    paused = domain.auto_pause_if_failing(campaign, window, deps.settings.failure_pause_ratio)
    if paused:
        log.warning("campaigns.campaign.auto_paused", campaign_id=campaign.campaign_id)
    await announce.changes(uow, campaign, changes, now, cause)
    await announce.changes(uow, campaign, paused, now)
    await announce.complete_if_done(uow, campaign, now)


async def _fail_campaign(uow: UnitOfWork, campaign: Campaign, now: datetime, reason: str) -> None:
    closed = await announce.close_waiting(uow, campaign, RecipientStatus.FAILED, reason, None)
    domain.fail_campaign(campaign, reason, closed)
    log.warning("campaigns.campaign.failed", campaign_id=campaign.campaign_id, reason=reason)
    await announce.campaign_updated(uow, campaign, now)


async def phone_number_changed(
    deps: Deps, event: PhoneNumberImported | PhoneNumberUpdated | PhoneNumberDeleted
) -> None:
    """The provider projection of telephony's numbers (a campaign without `phone_provider`)."""
    async with deps.uow() as uow:
        if isinstance(event, PhoneNumberDeleted):
            await uow.phone_numbers.remove(event.phone_number_id)
        else:
            await uow.phone_numbers.upsert(
                event.phone.phone_number_id, event.phone.provider, event.phone.phone_number
            )


async def time_out_attempts(deps: Deps, now: datetime) -> None:
    """A scheduler step: an attempt without an outcome after CAMPAIGNS_ATTEMPT_TIMEOUT_S is
    recorded as failed ("no outcome") and never retried."""
    cutoff = now - timedelta(seconds=deps.settings.attempt_timeout_s)
    async with deps.uow() as uow:
        stale = [(a.message_id, a.campaign_id) for a in await uow.attempts.timed_out(cutoff, 100)]
    for message_id, campaign_id in stale:
        async with deps.uow() as uow:
            locked = await _lock(uow, campaign_id, message_id)
            if locked is None or not domain.is_open(locked[1]):
                continue
            campaign, attempt, recipient = locked
            log.warning("campaigns.attempt.timed_out", message_id=message_id)
            if not domain.is_current(attempt, recipient):
                domain.close_attempt(attempt, now, reason="no outcome")
                continue
            # Its outcome is unknown, not a failure: the call may have been placed, so it is
            # never retried as a new attempt (that could ring the person twice).
            await _finish_attempt(
                deps,
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
