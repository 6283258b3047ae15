"""Rules that hold a recipient back without failing it: the platform's quiet hours (the shared
`contracts.quiet_hours`) and the frequency caps. Pure functions, no I/O; clocks are passed in.

A held-back recipient stays `scheduled` with `next_attempt_at` at the moment it may be dialled
and `waiting_reason` naming the rule that holds it (WAITING_REASONS); it is never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.calling import never_open_reason
from contracts.campaigns import CallingWindow
from contracts.quiet_hours import (
    CALLING_WINDOW,
    QUIET_HOURS,
    QuietHoursRules,
    never_permitted_reason,
    next_permitted_time,
)

FREQUENCY_CAP = "frequency_cap"  # the platform's attempts per number per rolling 24 h
CAMPAIGN_DAILY_CAP = "campaign_daily_cap"  # the campaign's own attempts per number per rolling 24 h
WAITING_REASONS = (QUIET_HOURS, CALLING_WINDOW, FREQUENCY_CAP, CAMPAIGN_DAILY_CAP)

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
        if why == QUIET_HOURS or window is None:
            return Hold(None, why, never_permitted_reason(rules, zones))
        return Hold(None, why, never_open_reason(window, zones))
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
