"""Rules that hold a recipient back without failing it: the platform's quiet hours (the shared
`contracts.quiet_hours`) and the frequency caps. Pure functions, no I/O; clocks are passed in.

A held-back recipient stays `scheduled` with `next_attempt_at` at the moment it may be dialled
and `waiting_reason` naming the rule that holds it (WAITING_REASONS); it is never dropped.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers

from contracts.campaigns import CallingWindow
from contracts.quiet_hours import (
    CALLING_WINDOW,
    QUIET_HOURS,
    QuietHoursRules,
    never_callable_reason,
    next_permitted_time,
)

FREQUENCY_CAP = "frequency_cap"  # the platform's attempts per number per rolling 24 h
CAMPAIGN_DAILY_CAP = "campaign_daily_cap"  # the campaign's own attempts per number per rolling 24 h
CALLER_ID_CAP = "caller_id_cap"  # every number of the campaign's caller-ID pool is at its daily cap
WAITING_REASONS = (QUIET_HOURS, CALLING_WINDOW, FREQUENCY_CAP, CAMPAIGN_DAILY_CAP, CALLER_ID_CAP)

CAP_PERIOD = timedelta(hours=24)


@dataclass(frozen=True)
class Hold:
    """A recipient may not be dialled now: dial it `at` (None: never, see `reason`), because of
    `waiting_reason` (one of WAITING_REASONS)."""

    at: datetime | None
    waiting_reason: str
    reason: str = ""  # the recipient-facing sentence when `at` is None


def cap_release(dialed_at: Sequence[datetime], limit: int, now: datetime) -> datetime | None:
    """None when another dial at `now` keeps within `limit` dials per rolling CAP_PERIOD, else the
    moment it does: when the oldest dial that still counts leaves the period.

    `dialed_at` holds the number's dials (any order); only those in (now - CAP_PERIOD, now] count.
    """
    recent = sorted(t for t in dialed_at if now - CAP_PERIOD < t <= now)
    if len(recent) < limit:
        return None
    # After the (len - limit + 1) oldest leave the period, limit - 1 remain: one more may go.
    return recent[len(recent) - limit] + CAP_PERIOD


def hold_for(
    now: datetime,
    number: str,
    zones: Sequence[str],
    window: CallingWindow | None,
    *,
    dials_everywhere: Sequence[datetime],
    platform_cap: int,
    dials_in_campaign: Sequence[datetime],
    campaign_cap: int | None,
    quiet_hours: QuietHoursRules,
) -> Hold | None:
    """None when the number may be dialled at `now`; else what holds it back and until when.

    Checked in order: the campaign's window and the quiet hours (in every one of `zones`), the
    platform's cap over `dials_everywhere` (every campaign's dials of the number), the campaign's
    own cap over `dials_in_campaign`. A cap's release is moved on to the next moment the hours
    allow, so `at` is a moment the recipient really may be dialled (unless a later cap holds it)."""
    rules = quiet_hours.for_number(number)
    at, why = next_permitted_time(now, window, rules, zones)
    if at is None:
        assert why is not None
        # The gateway's validate flags the same recipients with the same reason.
        return Hold(None, why, never_callable_reason(now, window, rules, zones) or "")
    if at > now:
        assert why is not None
        return Hold(at, why)
    for dials, cap, name in (
        (dials_everywhere, platform_cap, FREQUENCY_CAP),
        (dials_in_campaign, campaign_cap, CAMPAIGN_DAILY_CAP),
    ):
        if cap is None:
            continue
        release = cap_release(dials, cap, now)
        if release is not None:
            opening, _ = next_permitted_time(release, window, rules, zones)
            return Hold(opening or release, name)
    return None


# ---- caller-ID pools ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallerId:
    """One number of a campaign's caller-ID pool: its E.164 number (None when not known yet), its
    optional cap of dials per rolling CAP_PERIOD, its latest dials within that period (every
    campaign's; at least `daily_cap` of them when there are that many: enough for `cap_release`)
    and how many dials this campaign made from it (`used`, for rotation)."""

    phone_number_id: str
    e164: str | None
    daily_cap: int | None
    recent: Sequence[datetime]
    used: int


@functools.lru_cache(maxsize=65536)
def _place(e164: str) -> tuple[int, str]:
    """(country calling code, geographic area code or "") of a number, from libphonenumber."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return 0, ""
    national = phonenumbers.national_significant_number(parsed)
    return parsed.country_code or 0, national[: phonenumbers.length_of_geographical_area_code(parsed)]


def closeness(caller: str | None, callee: str) -> int:
    """2 when the caller ID shares the callee's country and area code (US +1 415 and +1 415), 1 for
    the country only, 0 otherwise (or unknown): callers answer local numbers more readily."""
    if caller is None:
        return 0
    (caller_country, caller_area), (callee_country, callee_area) = _place(caller), _place(callee)
    if caller_country != callee_country or caller_country == 0:
        return 0
    return 2 if caller_area and caller_area == callee_area else 1


def choose_caller_id(pool: Sequence[CallerId], callee: str, now: datetime) -> CallerId | datetime:
    """The pool number to dial `callee` from, or (all numbers at their daily cap) the moment the
    first one may dial again.

    Numbers under their cap, closest to the callee first (`closeness`); among equals the one this
    campaign used least, then pool order: dials rotate among equals, so no number carries a
    campaign alone.
    """
    free = [c for c in pool if c.daily_cap is None or cap_release(c.recent, c.daily_cap, now) is None]
    if not free:
        releases = [cap_release(c.recent, c.daily_cap, now) for c in pool if c.daily_cap is not None]
        return min(r for r in releases if r is not None)
    order = {c.phone_number_id: i for i, c in enumerate(pool)}
    return min(
        free,
        key=lambda c: (
            -closeness(c.e164, callee),
            c.used,
            order[c.phone_number_id],
        ),
    )


# ---- budget guard ---------------------------------------------------------------------------------


def budget_problem(
    max_total_minutes: float | None, used_s: int, in_flight: int, longest_s: int, estimate_s: float
) -> str | None:
    """Why the next dial could take the campaign over its budget of call minutes, or None.

    Could: minutes used, plus for each call in flight and for the next one the longest call so far
    (at least `estimate_s`), would exceed `max_total_minutes`.
    """
    if max_total_minutes is None:
        return None
    per_call = max(float(longest_s), estimate_s)
    if used_s + (in_flight + 1) * per_call <= max_total_minutes * 60:
        return None
    return (
        f"Budget: {used_s / 60:.1f} of max_total_minutes {max_total_minutes:g} used and {in_flight} "
        f"call(s) in flight; the next call (up to {per_call / 60:.1f} min) could exceed it"
    )
