"""Campaign rules: pure functions, no I/O. Numbers, calling windows, retries, auto-pause, AIMD."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from contracts.campaigns import RETRYABLE_OUTCOMES, CallingWindow, RetryDelays


class CampaignStatus:
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_CAMPAIGN_STATUSES = frozenset(
    {CampaignStatus.COMPLETED, CampaignStatus.FAILED, CampaignStatus.CANCELLED}
)


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


IN_FLIGHT_STATUSES = frozenset({RecipientStatus.DIALING, RecipientStatus.IN_PROGRESS})
FINAL_RECIPIENT_STATUSES = frozenset(
    {"completed", "no_answer", "busy", "failed", "voicemail", "cancelled", "skipped_dnc", "skipped_duplicate"}
)
CALL_OUTCOMES = frozenset({"completed", "no_answer", "busy", "failed", "voicemail"})

# Upstream statuses meaning "this campaign's agent or number cannot be used" (not the recipient).
FATAL_DIAL_STATUS_CODES = frozenset({400, 401, 403, 404, 422})
RATE_LIMITED = 429

_ATTEMPT_NAMESPACE = uuid.UUID("6f1c1f52-3c35-4d5e-9a43-6a0f4a0e7c11")


def attempt_message_id(campaign_id: str, recipient_id: str, attempt: int) -> str:
    """The PlaceCall `message_id` of one attempt: telephony's idempotency key, so it must be the
    same however often (and by whichever replica) the attempt is published."""
    return uuid.uuid5(_ATTEMPT_NAMESPACE, f"{campaign_id}\x00{recipient_id}\x00{attempt}").hex


# ---- numbers ------------------------------------------------------------------------------------


def normalize_number(raw: str) -> tuple[str | None, str | None]:
    """(E.164 number, None) when `raw` is a valid E.164 number, else (None, reason)."""
    if not raw.startswith("+"):
        return None, "Phone number must be E.164 (+CountryCode...)"
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return None, "Phone number could not be parsed"
    formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if formatted != raw or not phonenumbers.is_valid_number(parsed):
        return None, "Invalid phone number"
    return formatted, None


def number_time_zones(e164: str) -> tuple[str, ...]:
    """Every IANA zone libphonenumber gives for the number's region (several when the region spans
    zones: +61 8 is Adelaide and Perth, +1 800 is all of NANP); () when unknown (e.g. +800)."""
    try:
        zones = phone_timezone.time_zones_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(z for z in zones if z != "Etc/Unknown" and _zone(z) is not None)


def recipient_time_zones(e164: str, campaign_zone: str | None) -> tuple[str, ...]:
    """The zones a recipient's calling window is applied in.

    The campaign's zone when it is one of the number's zones (the submitter knows where their
    customers are); else every zone of the number (the window must be open in all of them); a number
    with no known zone uses the campaign's zone, else UTC.
    """
    zones = number_time_zones(e164)
    if campaign_zone and campaign_zone in zones:
        return (campaign_zone,)
    if zones:
        return zones
    if campaign_zone and _zone(campaign_zone) is not None:
        return (campaign_zone,)
    return ("UTC",)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


# ---- calling windows ----------------------------------------------------------------------------

Interval = tuple[datetime, datetime]


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _openings(now: datetime, start: time, end: time, days: set[int], zone: ZoneInfo) -> list[Interval]:
    """The window's [opening, closing) intervals in one zone (UTC) from two days before `now` to
    ten days after (every local date near `now` in any zone, plus a full week ahead)."""
    today = now.astimezone(UTC).date()
    out: list[Interval] = []
    for offset in range(-2, 11):
        day = today + timedelta(days=offset)
        if day.weekday() not in days:
            continue
        close_day = day if start < end else day + timedelta(days=1)
        opening = datetime.combine(day, start, tzinfo=zone).astimezone(UTC)
        closing = datetime.combine(close_day, end, tzinfo=zone).astimezone(UTC)
        if out and opening <= out[-1][1]:  # a whole-day window on consecutive days: one interval
            out[-1] = (out[-1][0], max(out[-1][1], closing))
        else:
            out.append((opening, closing))
    return out


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def next_dial_time(
    now: datetime, window: CallingWindow | None, zones: str | Sequence[str]
) -> datetime | None:
    """When a recipient whose calling window applies in `zones` may be dialled: `now` if the
    window is open in every zone, else the next moment it is (UTC); None if that never happens
    within a week (no allowed day, a malformed window, or zones too far apart for the window, e.g.
    09:00-10:00 in both Perth and Sydney).

    The window is [start, end) in local wall-clock time, opening on an allowed weekday (0 = Monday);
    start > end crosses midnight (the part after midnight belongs to the day it opened); start == end
    means the whole day. Several zones: it opens at the latest of their openings and closes at the
    earliest closing. Local times are resolved with zoneinfo, so DST shifts are honoured.
    """
    if window is None:
        return now
    try:
        start, end = _hhmm(window.start), _hhmm(window.end)
    except ValueError:
        return None
    days = {d % 7 for d in window.days}
    if not days:
        return None
    names = [zones] if isinstance(zones, str) else list(zones)
    open_in_all: list[Interval] | None = None
    for name in names or ["UTC"]:
        intervals = _openings(now, start, end, days, _zone(name) or ZoneInfo("UTC"))
        open_in_all = intervals if open_in_all is None else _intersect(open_in_all, intervals)
    for opening, closing in open_in_all or []:
        if opening <= now < closing:
            return now
        if opening > now:
            return opening
    return None


def never_open_reason(window: CallingWindow, zones: Sequence[str]) -> str:
    """The recipient-facing reason when `next_dial_time` is None."""
    if len(zones) > 1:
        return (
            f"The calling window {window.start}-{window.end} is never open in all of the number's "
            f"time zones at once ({', '.join(zones)}); give the campaign a timezone that is one of them"
        )
    return "The calling window never opens"


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
