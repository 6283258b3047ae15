"""Campaign rules: pure functions, no I/O. Numbers, calling windows, retries, auto-pause, AIMD."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from contracts.calling import never_open_reason as never_open_reason
from contracts.calling import next_dial_time as next_dial_time
from contracts.calling import normalize_number as normalize_number
from contracts.calling import number_time_zones as number_time_zones
from contracts.calling import recipient_time_zones as recipient_time_zones
from contracts.campaigns import FINAL_CAMPAIGN_STATUSES as FINAL_CAMPAIGN_STATUSES
from contracts.campaigns import FINAL_RECIPIENT_STATUSES as FINAL_RECIPIENT_STATUSES
from contracts.campaigns import RetryDelays


class CampaignStatus:
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


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
# Retried (after the campaign's `RetryDelays` delay for it) while a recipient has retries left.
RETRYABLE_OUTCOMES = frozenset({"no_answer", "busy", "failed", "voicemail"})

# Upstream statuses meaning "this campaign's agent or number cannot be used" (not the recipient).
FATAL_DIAL_STATUS_CODES = frozenset({400, 401, 403, 404, 422})
RATE_LIMITED = 429

_ATTEMPT_NAMESPACE = uuid.UUID("6f1c1f52-3c35-4d5e-9a43-6a0f4a0e7c11")


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
