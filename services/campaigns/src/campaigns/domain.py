"""Campaign rules: pure functions, no I/O. Numbers, calling windows, retries, auto-pause, AIMD."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from contracts.calling import never_open_reason as never_open_reason
from contracts.calling import next_dial_time as next_dial_time
from contracts.calling import normalize_number as normalize_number
from contracts.calling import number_time_zones as number_time_zones
from contracts.calling import recipient_time_zones as recipient_time_zones
from contracts.campaigns import FINAL_CAMPAIGN_STATUSES as FINAL_CAMPAIGN_STATUSES
from contracts.campaigns import FINAL_RECIPIENT_STATUSES as FINAL_RECIPIENT_STATUSES
from contracts.campaigns import RetryDelays

if TYPE_CHECKING:
    # Only their attributes are read and set here: the rows' state, never a session.
    from campaigns.models import Attempt, Campaign, Recipient


class CampaignStatus:
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_CAMPAIGN_STATUSES = frozenset({CampaignStatus.PENDING, CampaignStatus.RUNNING, CampaignStatus.PAUSED})
CANCELLED_REASON = "Campaign cancelled"
PAUSED_ON_REQUEST = "Paused on request"


class RecipientStatus:
    """`scheduled` also covers "awaiting a retry" (with `next_attempt_at` in the future)."""

    SCHEDULED = "scheduled"
    DIALING = "dialing"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED_DNC = "skipped_dnc"
    SKIPPED_DUPLICATE = "skipped_duplicate"  # the same number earlier in the campaign: dialled once
    OPTED_OUT = "opted_out"  # the callee said "do not call me again" during a call


IN_FLIGHT_STATUSES = frozenset({RecipientStatus.DIALING, RecipientStatus.IN_PROGRESS})


class AttemptStatus:
    """One dial of a recipient (an `attempts` row): `rate_limited` attempts called nobody."""

    DIALING = "dialing"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"
    RATE_LIMITED = "rate_limited"


OPEN_ATTEMPT_STATUSES = frozenset({AttemptStatus.DIALING, AttemptStatus.IN_PROGRESS})
# A recipient someone answered for: a campaign that reached none says so when it completes.
REACHED_STATUSES = frozenset({"completed", "opted_out"})


def nobody_reached_reason(counts: dict[str, int], first_failure: str | None) -> str | None:
    """A completed campaign's `status_reason` when no recipient was reached (`counts`: recipients
    per final status), e.g. "No recipient was reached: 3 failed, 1 skipped_dnc; first failure: ...";
    None when one was, or the campaign has no recipient."""
    total = sum(counts.values())
    if total == 0 or any(counts.get(status, 0) for status in REACHED_STATUSES):
        return None
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"No recipient was reached: {parts}" + (
        f"; first failure: {first_failure}" if first_failure else ""
    )


CALL_OUTCOMES = frozenset({"completed", "no_answer", "busy", "failed", "voicemail"})
# A recipient whose call has ended may be reopened for a callback; one skipped or cancelled may not.
REOPENABLE_STATUSES = CALL_OUTCOMES
# Retried (after the campaign's `RetryDelays` delay for it) while a recipient has retries left.
RETRYABLE_OUTCOMES = frozenset({"no_answer", "busy", "failed", "voicemail"})

# Upstream statuses meaning "this campaign's agent or number cannot be used" (not the recipient).
FATAL_DIAL_STATUS_CODES = frozenset({400, 401, 403, 404, 422})
RATE_LIMITED = 429
# A carrier's or ElevenLabs' words in a recipient's reason, at most this long.
DIAL_DETAIL_MAX_CHARS = 300


def dial_failure_reason(status_code: int, error: str, detail: str | None, refusal: str | None) -> str:
    """A failed dial's reason as the recipient shows it. A refusal we recognise names its cause
    ("Carrier refused the number: ..."); any other keeps its status and, when ElevenLabs said why
    (a refused dial's `message`), its words, so the operator is not left with "502 Call could not
    be placed" alone."""
    words = (detail or "").strip()[:DIAL_DETAIL_MAX_CHARS]
    if refusal is not None and words:
        return f"{error}: {words}"
    return f"{status_code} {error}: {words}" if words else f"{status_code} {error}"


_ATTEMPT_NAMESPACE = uuid.UUID("6f1c1f52-3c35-4d5e-9a43-6a0f4a0e7c11")


def caller_id_pool(campaign: Campaign) -> list[str]:
    """The campaign's caller IDs: `phone_number_id` first, then `phone_number_ids` (once each)."""
    return list(dict.fromkeys([campaign.phone_number_id, *(campaign.phone_number_ids or [])]))


def attempt_message_id(campaign_id: str, recipient_id: str, attempt: int) -> str:
    """The PlaceCall `message_id` of one attempt: telephony's idempotency key, so it must be the
    same however often (and by whichever replica) the attempt is published."""
    return uuid.uuid5(_ATTEMPT_NAMESPACE, f"{campaign_id}\x00{recipient_id}\x00{attempt}").hex


# ---- numbers, zones and calling windows: the shared rules (contracts.calling) ------------------
# Re-exported: the gateway previews a submission with the very rules the scheduler applies.

# ---- outcomes and retries -----------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeDecision:
    """What to do with a recipient after an attempt's outcome."""

    status: str  # the recipient's new status: a final one, or `scheduled` to retry
    retry_in_s: float | None = None

    @property
    def final(self) -> bool:
        return self.retry_in_s is None


def decide_outcome(
    outcome: str,
    retries_used: int,
    retry_count: int,
    delays: RetryDelays,
    *,
    delay_scale: float = 1.0,
    may_retry: bool = True,
) -> OutcomeDecision:
    """Completed is final; a retryable outcome is retried after its delay while retries remain
    (and the campaign still runs), else it is the final status."""
    if outcome not in CALL_OUTCOMES:
        outcome = RecipientStatus.FAILED
    if outcome in RETRYABLE_OUTCOMES and may_retry and retries_used < retry_count:
        delay = float(getattr(delays, outcome)) * delay_scale
        return OutcomeDecision(RecipientStatus.SCHEDULED, retry_in_s=delay)
    return OutcomeDecision(outcome)


# ---- auto-pause and failure ---------------------------------------------------------------------

FAILED_MARK = "F"
OK_MARK = "o"


def push_outcome(recent: str, outcome: str, window: int) -> str:
    """The last `window` outcomes as a string of marks (F = failed), oldest first."""
    mark = FAILED_MARK if outcome == RecipientStatus.FAILED else OK_MARK
    return (recent + mark)[-window:]


def should_auto_pause(recent: str, window: int, ratio: float) -> bool:
    """Pause once a full window of outcomes has more than `ratio` failures (ratio 0 disables)."""
    if ratio <= 0 or len(recent) < window:
        return False
    return recent.count(FAILED_MARK) / len(recent) > ratio


def could_not_run(dials_accepted: int, fatal_dial_failures: int, threshold: int) -> bool:
    """A campaign fails (rather than its recipients) when its first `threshold` dials were all
    refused with a status that blames the agent/number (FATAL_DIAL_STATUS_CODES) and none was
    ever accepted."""
    return dials_accepted == 0 and fatal_dial_failures >= threshold


def configuration_refused(refusals_in_a_row: int, threshold: int) -> bool:
    """A campaign fails once `threshold` consecutive outcomes were carrier refusals blaming our
    configuration (bad credentials, trial account, permissions): no further dial can succeed."""
    return refusals_in_a_row >= threshold


# ---- AIMD throttle on upstream 429 --------------------------------------------------------------


def throttle_on_rate_limit(
    current: float | None,
    limit: int,
    in_flight: int,
    *,
    decreased_at: datetime | None,
    now: datetime,
    hold_s: float,
) -> tuple[float, datetime]:
    """Multiplicative decrease: halve the effective concurrency (never below 1), at most once per
    `hold_s` (a burst of 429s from one overload halves once). Returns (throttle, decreased_at)."""
    if current is not None and decreased_at is not None and (now - decreased_at).total_seconds() < hold_s:
        return current, decreased_at
    effective = min(current if current is not None else float(limit), float(max(in_flight, 1)), float(limit))
    return max(1.0, effective / 2), now


def throttle_on_success(current: float | None, limit: int) -> float | None:
    """Additive increase: about +1 per window of accepted dials; None once back at the limit."""
    if current is None:
        return None
    grown = current + 1.0 / max(current, 1.0)
    return None if grown >= limit else grown


def effective_limit(limit: int, throttle: float | None) -> int:
    return limit if throttle is None else max(1, min(limit, int(throttle)))


def progress_due(campaign: Campaign, before: datetime) -> bool:
    """A snapshot is owed: the campaign changed and none went out since `before`."""
    return campaign.progress_dirty and (
        campaign.last_emitted_at is None or campaign.last_emitted_at <= before
    )


@dataclass(frozen=True)
class TickPlan:
    """What one scheduler pass has to do, from one read of the campaigns (`plan_tick`)."""

    to_start: list[str]
    #: Running campaigns, oldest first; `to_dispatch` those of them with a free slot.
    running: list[str]
    to_dispatch: list[str]
    progress_due: list[str]


def plan_tick(
    campaigns: Sequence[Campaign], now_unix: int, progress_before: datetime, default_limit: int
) -> TickPlan:
    """Sort the campaigns a pass may touch (pending, running, or owing a snapshot; oldest first).

    A running campaign whose calls in flight fill its limit (or its throttle) is not dispatched:
    nothing could be dialled, and its dispatch would cost a transaction and four queries. Its
    figures may be a moment old; the dispatch re-reads them under its lock, and the event that
    frees a slot wakes the scheduler again."""
    to_start, running, to_dispatch, progress = [], [], [], []
    for c in campaigns:
        if (
            c.status == CampaignStatus.PENDING
            and c.ready
            and (c.scheduled_time_unix is None or c.scheduled_time_unix <= now_unix)
        ):
            to_start.append(c.campaign_id)
        if c.status == CampaignStatus.RUNNING:
            running.append(c.campaign_id)
            if effective_limit(c.concurrency_limit or default_limit, c.throttle) > c.in_flight:
                to_dispatch.append(c.campaign_id)
        if progress_due(c, progress_before):
            progress.append(c.campaign_id)
    return TickPlan(to_start, running, to_dispatch, progress)


# ---- the campaign and recipient state machines --------------------------------------------------
# Every status change of a campaign or a recipient row goes through one of the functions below
# (the one exception: the repository's bulk `close_scheduled`, one UPDATE closing every waiting
# recipient, counted by `cancel`/`fail`). Each changes all the fields that move together and
# returns what changed, in the order it is announced: the use case publishes a
# `campaign.recipient_updated` per `RecipientChanged` and a `campaign.updated` per `CampaignChanged`.

_C = CampaignStatus
_R = RecipientStatus

CAMPAIGN_TRANSITIONS: dict[str, frozenset[str]] = {
    _C.PENDING: frozenset({_C.RUNNING, _C.PAUSED, _C.COMPLETED, _C.FAILED, _C.CANCELLED}),
    _C.RUNNING: frozenset({_C.PAUSED, _C.COMPLETED, _C.FAILED, _C.CANCELLED}),
    # Paused again on request (a new reason); resumed to pending when not yet due.
    _C.PAUSED: frozenset({_C.PAUSED, _C.RUNNING, _C.PENDING, _C.COMPLETED, _C.FAILED, _C.CANCELLED}),
    _C.COMPLETED: frozenset(),
    _C.FAILED: frozenset(),
    _C.CANCELLED: frozenset(),
}

_ENDS_AN_ATTEMPT = CALL_OUTCOMES | {_R.CANCELLED, _R.OPTED_OUT}
RECIPIENT_TRANSITIONS: dict[str, frozenset[str]] = {
    # Held back (scheduled again, later), dialled, or closed before any dial.
    _R.SCHEDULED: frozenset(
        {
            _R.SCHEDULED,
            _R.DIALING,
            _R.FAILED,
            _R.CANCELLED,
            _R.SKIPPED_DNC,
            _R.SKIPPED_DUPLICATE,
            _R.OPTED_OUT,
        }
    ),
    # Answered, waiting again (a retry, a callback, an upstream 429) or ended with the attempt.
    _R.DIALING: frozenset({_R.IN_PROGRESS, _R.SCHEDULED} | _ENDS_AN_ATTEMPT),
    _R.IN_PROGRESS: frozenset({_R.IN_PROGRESS, _R.SCHEDULED} | _ENDS_AN_ATTEMPT),
    **{status: frozenset({_R.SCHEDULED, _R.OPTED_OUT}) for status in REOPENABLE_STATUSES},
    _R.CANCELLED: frozenset({_R.OPTED_OUT}),
    _R.SKIPPED_DNC: frozenset({_R.OPTED_OUT}),
    _R.SKIPPED_DUPLICATE: frozenset({_R.OPTED_OUT}),
    _R.OPTED_OUT: frozenset(),
}


class InvalidTransition(ValueError):
    """A status change the state machine does not allow (a bug in the caller, never a client's)."""


@dataclass(frozen=True)
class RecipientChanged:
    recipient: Recipient


@dataclass(frozen=True)
class CampaignChanged:
    campaign: Campaign


Change = RecipientChanged | CampaignChanged


def _move_campaign(campaign: Campaign, status: str, reason: str | None) -> None:
    if status not in CAMPAIGN_TRANSITIONS[campaign.status]:
        raise InvalidTransition(f"campaign {campaign.campaign_id}: {campaign.status} -> {status}")
    campaign.status = status
    campaign.status_reason = reason


def _move_recipient(recipient: Recipient, status: str) -> None:
    if status not in RECIPIENT_TRANSITIONS[recipient.status]:
        raise InvalidTransition(f"recipient {recipient.id}: {recipient.status} -> {status}")
    recipient.status = status


# ---- recipients ---------------------------------------------------------------------------------


def status_on_arrival(number_problem: str | None, campaign_status: str | None) -> tuple[str, str | None]:
    """(status, reason) of a recipient as its chunk is stored: `failed` with its number's problem,
    `cancelled` when its campaign already ended, else `scheduled` (`campaign_status` None: the
    chunk came before the submit)."""
    if number_problem is not None:
        return _R.FAILED, number_problem
    if campaign_status in FINAL_CAMPAIGN_STATUSES:
        return _R.CANCELLED, CANCELLED_REASON
    return _R.SCHEDULED, None


def finish_recipient(
    campaign: Campaign, recipient: Recipient, status: str, reason: str | None
) -> list[Change]:
    """The recipient ends with final `status`: its reason, no next attempt, counted as finished
    once (a recipient already final, opting out afterwards, is not counted again), progress due."""
    if status not in FINAL_RECIPIENT_STATUSES:
        raise InvalidTransition(f"recipient {recipient.id}: {status} is not final")
    was_final = recipient.status in FINAL_RECIPIENT_STATUSES
    _move_recipient(recipient, status)
    recipient.reason = reason
    recipient.next_attempt_at = None
    if not was_final:
        campaign.total_finished += 1
    campaign.progress_dirty = True
    return [RecipientChanged(recipient)]


def hold_recipient(recipient: Recipient, until: datetime, waiting_reason: str) -> list[Change]:
    """A due recipient held back (calling window, quiet hours, caps): still `scheduled`, due at
    `until`, with why (rules.WAITING_REASONS)."""
    _move_recipient(recipient, _R.SCHEDULED)
    recipient.next_attempt_at = until
    recipient.waiting_reason = waiting_reason
    return [RecipientChanged(recipient)]


def start_attempt(campaign: Campaign, recipient: Recipient, attempt: int) -> list[Change]:
    """Attempt `attempt` dialled: the recipient `dialing` with the last call's results cleared (an
    owed callback is this attempt), dispatched once, one more call in flight."""
    _move_recipient(recipient, _R.DIALING)
    recipient.attempts = attempt
    recipient.callback_pending = False
    recipient.next_attempt_at = None
    recipient.waiting_reason = None
    recipient.conversation_id = None
    recipient.duration_seconds = None
    if not recipient.dispatched:
        recipient.dispatched = True
        campaign.total_dispatched += 1
        campaign.progress_dirty = True
    campaign.in_flight += 1
    return [RecipientChanged(recipient)]


def call_in_progress(recipient: Recipient, attempt: Attempt, conversation_id: str | None) -> list[Change]:
    """The call was placed (or answered): recipient and attempt `in_progress` with its conversation."""
    _move_recipient(recipient, _R.IN_PROGRESS)
    recipient.conversation_id = conversation_id
    attempt.status = AttemptStatus.IN_PROGRESS
    attempt.conversation_id = conversation_id
    return [RecipientChanged(recipient)]


def is_open(attempt: Attempt) -> bool:
    """The attempt still waits for its outcome (`dialing` or `in_progress`)."""
    return attempt.status in OPEN_ATTEMPT_STATUSES


def is_current(attempt: Attempt, recipient: Recipient) -> bool:
    """The attempt is the recipient's latest and the recipient is in flight: only such an
    attempt's outcome may move the recipient (an older one's is redelivered or superseded)."""
    return recipient.attempts == attempt.attempt and recipient.status in IN_FLIGHT_STATUSES


def record_call(
    campaign: Campaign,
    attempt: Attempt,
    recipient: Recipient,
    conversation_id: str | None,
    duration_seconds: int | None,
    outcome: str | None,
) -> None:
    """A call ended: its conversation, duration and outcome on the attempt and recipient, and its
    seconds in the campaign's totals (the estimate's average call time comes from them)."""
    attempt.conversation_id = conversation_id
    recipient.conversation_id = conversation_id
    recipient.duration_seconds = duration_seconds
    recipient.outcome = outcome
    campaign.call_seconds += duration_seconds or 0
    campaign.longest_call_s = max(campaign.longest_call_s, duration_seconds or 0)


def close_attempt(
    attempt: Attempt,
    now: datetime,
    *,
    status: str = AttemptStatus.ENDED,
    call_status: str | None = None,
    reason: str | None = None,
) -> None:
    """The attempt row's end: `ended` with the call's status and reason, or `rate_limited`
    (nobody was called). Only an open attempt ends (`InvalidTransition` otherwise)."""
    if not is_open(attempt):
        raise InvalidTransition(f"attempt {attempt.message_id}: {attempt.status} -> {status}")
    attempt.status = status
    if call_status is not None:
        attempt.call_status = call_status
    attempt.reason = reason
    attempt.finished_at = now


def end_attempt(
    campaign: Campaign,
    attempt: Attempt,
    now: datetime,
    *,
    status: str = AttemptStatus.ENDED,
    call_status: str | None = None,
    reason: str | None = None,
) -> None:
    """An attempt in flight ended (an outcome, a 429 or a time-out): its row closed, one call
    fewer in flight."""
    close_attempt(attempt, now, status=status, call_status=call_status, reason=reason)
    campaign.in_flight = max(0, campaign.in_flight - 1)


def wait_again(recipient: Recipient, at: datetime) -> list[Change]:
    """Nobody was called (an upstream 429): `scheduled` again, due at `at`; not a retry."""
    _move_recipient(recipient, _R.SCHEDULED)
    recipient.next_attempt_at = at
    return [RecipientChanged(recipient)]


def retry_recipient(
    campaign: Campaign,
    recipient: Recipient,
    at: datetime,
    reason: str | None,
    *,
    counts_as_retry: bool = True,
) -> list[Change]:
    """After an attempt: `scheduled` again at `at` with the attempt's reason; a retry uses one of
    the campaign's `retry_count` (an owed callback does not). Progress due."""
    _move_recipient(recipient, _R.SCHEDULED)
    recipient.reason = reason
    recipient.next_attempt_at = at
    if counts_as_retry:
        recipient.retries += 1
    campaign.progress_dirty = True
    return [RecipientChanged(recipient)]


def closed_by_campaign(campaign: Campaign) -> tuple[str, str]:
    """(status, reason) of a recipient its ended campaign closes: `cancelled`, or `failed` with the
    campaign's reason."""
    if campaign.status == _C.CANCELLED:
        return _R.CANCELLED, campaign.status_reason or CANCELLED_REASON
    return _R.FAILED, campaign.status_reason or CANCELLED_REASON


def opt_out(campaign: Campaign, recipient: Recipient, reason: str) -> list[Change]:
    """The callee asked not to be called again: no callback is owed; a call in flight ends as
    `opted_out` with its attempt, any other recipient at once (nothing for one already opted out)."""
    recipient.opted_out = True
    recipient.callback_pending = False
    if recipient.status in IN_FLIGHT_STATUSES or recipient.status == _R.OPTED_OUT:
        return []
    return finish_recipient(campaign, recipient, _R.OPTED_OUT, reason)


def may_call_back(recipient: Recipient) -> bool:
    """Whether a callback may be booked for the recipient (its campaign still active)."""
    return not recipient.opted_out and (
        recipient.status == _R.SCHEDULED
        or recipient.status in IN_FLIGHT_STATUSES
        or recipient.status in REOPENABLE_STATUSES
    )


def book_callback(
    campaign: Campaign, recipient: Recipient, at: datetime, asked: datetime, requested: str | None
) -> list[Change]:
    """One extra attempt owed at `at` (`asked`: the time the callee said). A recipient whose call
    ended is `scheduled` again (no longer finished); one in flight gets it after its call."""
    recipient.callback_at = asked
    recipient.callback_requested = requested
    recipient.callback_pending = True
    if recipient.status in REOPENABLE_STATUSES:
        _move_recipient(recipient, _R.SCHEDULED)
        campaign.total_finished -= 1
        campaign.progress_dirty = True
    if recipient.status == _R.SCHEDULED:
        recipient.next_attempt_at = at
        recipient.reason = f"Callback requested for {asked.isoformat()}"
    return [RecipientChanged(recipient)]


# ---- campaigns ----------------------------------------------------------------------------------


def is_due(campaign: Campaign, now: datetime) -> bool:
    """Whether the campaign's start time (if any) has come."""
    return campaign.scheduled_time_unix is None or campaign.scheduled_time_unix <= now.timestamp()


def start_campaign(campaign: Campaign) -> list[Change]:
    """A pending campaign whose recipients are all in starts running."""
    _move_campaign(campaign, _C.RUNNING, campaign.status_reason)
    return [CampaignChanged(campaign)]


def pause_campaign(campaign: Campaign, reason: str) -> list[Change]:
    """Paused with why (on request, the budget, auto-pause); nothing is dialled until resumed."""
    _move_campaign(campaign, _C.PAUSED, reason)
    return [CampaignChanged(campaign)]


def resume_campaign(campaign: Campaign, now: datetime) -> list[Change]:
    """A paused campaign runs again (pending while not ready or not due) with a fresh failure
    window; resuming one that is not paused changes nothing but is announced."""
    if campaign.status == _C.PAUSED:
        due = campaign.ready and is_due(campaign, now)
        _move_campaign(campaign, _C.RUNNING if due else _C.PENDING, None)
        campaign.recent_outcomes = ""  # after a (possibly auto) pause
    return [CampaignChanged(campaign)]


def cancel_campaign(campaign: Campaign, closed: int) -> list[Change]:
    """Cancelled, its `closed` waiting recipients now final (counted once staged: before that,
    staging counts them)."""
    if campaign.ready:
        campaign.total_finished += closed
    _move_campaign(campaign, _C.CANCELLED, None)
    return [CampaignChanged(campaign)]


def fail_campaign(campaign: Campaign, reason: str, closed: int) -> list[Change]:
    """Failed with why (it cannot run), its `closed` waiting recipients now final."""
    if campaign.ready:
        campaign.total_finished += closed
    _move_campaign(campaign, _C.FAILED, reason)
    return [CampaignChanged(campaign)]


def is_done(campaign: Campaign) -> bool:
    """Every recipient of an active campaign final and no call in flight: time to complete it (an
    ended campaign keeps its status)."""
    return (
        campaign.ready
        and campaign.status in ACTIVE_CAMPAIGN_STATUSES
        and campaign.total_finished >= campaign.total_scheduled
        and campaign.in_flight <= 0
    )


def complete_campaign(campaign: Campaign, counts: dict[str, int], first_failure: str | None) -> list[Change]:
    """Completed (`is_done`); its reason says so when nobody was reached (`nobody_reached_reason`:
    `counts` are recipients per final status, `first_failure` the first failed one's reason)."""
    _move_campaign(campaign, _C.COMPLETED, nobody_reached_reason(counts, first_failure))
    return [CampaignChanged(campaign)]


def record_outcome(campaign: Campaign, call_status: str, window: int) -> None:
    """An attempt's outcome joins the campaign's failure window; progress due."""
    campaign.recent_outcomes = push_outcome(campaign.recent_outcomes, call_status, window)
    campaign.progress_dirty = True


def auto_pause_if_failing(campaign: Campaign, window: int, ratio: float) -> list[Change]:
    """A running campaign whose last `window` outcomes failed more than `ratio` of the time pauses."""
    if campaign.status != _C.RUNNING or not should_auto_pause(campaign.recent_outcomes, window, ratio):
        return []
    return pause_campaign(campaign, f"Auto-paused: more than {ratio:.0%} of the last {window} calls failed")
