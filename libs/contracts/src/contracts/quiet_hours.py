"""Platform-wide quiet hours: when a number may be rung at all, whatever a campaign or a caller
asks. Shared by the campaigns scheduler and the gateway's single calls, so both read the same
rules. Pure functions over the rules file `contracts/data/quiet_hours.yaml` (its header documents
the shape and the sources of every value); no I/O after the file is read once.

A number's rules: its country's (libphonenumber's region of the number), else the default; for a US
number also its state's (libphonenumber's geocoder's answer, `contracts.us_states`), both at once.
They hold in the number's local time in every one of its candidate zones
(`contracts.calling.recipient_time_zones`): a number whose region spans zones is rung only while
every zone is inside the hours. A campaign's `calling_window` only narrows the result
(`next_permitted_time`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

from contracts.calling import (
    Interval,
    intersect_intervals,
    never_open_reason,
    next_dial_time,
    number_place,
    open_intervals,
)
from contracts.campaigns import CallingWindow

RULES_FILE = Path(__file__).parent / "data" / "quiet_hours.yaml"

# Why a recipient waits (`CampaignRecipientUpdated.waiting_reason`).
QUIET_HOURS = "quiet_hours"
CALLING_WINDOW = "calling_window"

_WEEKS = 2  # every rule in the file opens within a week; two cover a window crossing the week's end


@dataclass(frozen=True)
class HoursRule:
    """One rule of the file: `name` ("default", "country FR", "US state FL"), the windows of which
    any being open allows a call, and the file's `source` for them."""

    name: str
    windows: tuple[CallingWindow, ...]
    source: str

    def describe(self) -> str:
        """E.g. "US state TX: 09:00-21:00 (Mon-Sat), 12:00-21:00 (Sun)"."""
        return f"{self.name}: " + ", ".join(_window_text(w) for w in self.windows)


@dataclass(frozen=True)
class QuietHoursRules:
    default: HoursRule
    countries: dict[str, HoursRule]
    us_states: dict[str, HoursRule]

    def for_number(self, e164: str) -> tuple[HoursRule, ...]:
        """Every rule binding a call to `e164` (`for_place` of its region and states)."""
        return self.for_place(*number_region_and_state(e164))

    def for_place(self, region: str | None, states: Sequence[str]) -> tuple[HoursRule, ...]:
        """Every rule binding a call to a number of `region` (ISO) and `states` (USPS, US only):
        the country's (else the default), plus each US state's the number may ring in."""
        rules = [self.countries.get(region or "", self.default)]
        if region == "US":
            rules += [self.us_states[state] for state in states if state in self.us_states]
        return tuple(rules)


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _window_text(window: CallingWindow) -> str:
    days = sorted({d % 7 for d in window.days})
    if len(days) == 7:
        return f"{window.start}-{window.end}"
    if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
        return f"{window.start}-{window.end} ({_DAY_NAMES[days[0]]}-{_DAY_NAMES[days[-1]]})"
    return f"{window.start}-{window.end} ({', '.join(_DAY_NAMES[d] for d in days)})"


def _rule(name: str, raw: dict[str, Any]) -> HoursRule:
    windows = tuple(CallingWindow.model_validate(w) for w in raw["windows"])
    if not windows:
        raise ValueError(f"quiet hours rule {name!r} has no window")
    return HoursRule(name=name, windows=windows, source=str(raw.get("source", "")))


def parse_rules(raw: dict[str, Any]) -> QuietHoursRules:
    """The rules from the file's parsed YAML (see its header); ValueError for a malformed file."""
    return QuietHoursRules(
        default=_rule("default", raw["default"]),
        countries={code: _rule(f"country {code}", r) for code, r in (raw.get("countries") or {}).items()},
        us_states={code: _rule(f"US state {code}", r) for code, r in (raw.get("us_states") or {}).items()},
    )


@functools.cache
def load_rules(path: Path = RULES_FILE) -> QuietHoursRules:
    """The shipped rules file, read once per process."""
    return parse_rules(yaml.safe_load(path.read_text(encoding="utf-8")))


# ---- a number's country and US state --------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def number_region_and_state(e164: str) -> tuple[str | None, tuple[str, ...]]:
    """(ISO region, USPS states) of a number (`contracts.calling.number_place`); (None, ()) for
    text that is not a number."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None, ()
    return number_place(parsed)


# ---- when a call is allowed ------------------------------------------------------------------------


def _merge(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def allowed_intervals(
    now: datetime, rules: Sequence[HoursRule], zones: Sequence[str], *, weeks: int = _WEEKS
) -> list[Interval]:
    """[start, end) intervals (UTC, from `now` for `weeks` weeks) when every rule is open in every zone."""
    allowed: list[Interval] | None = None
    for rule in rules:
        for zone in list(zones) or ["UTC"]:
            in_zone = _merge([i for w in rule.windows for i in open_intervals(now, w, [zone], weeks=weeks)])
            allowed = in_zone if allowed is None else intersect_intervals(allowed, in_zone)
    return allowed or []


def quiet_hours_allow(now: datetime, rules: Sequence[HoursRule], zones: Sequence[str]) -> bool:
    """True when a call at `now` is inside every rule's hours in every zone."""
    return any(start <= now < end for start, end in allowed_intervals(now, rules, zones))


def next_quiet_hours_opening(
    now: datetime, rules: Sequence[HoursRule], zones: Sequence[str]
) -> datetime | None:
    """`now` when the quiet hours allow a call, else the next moment they do (UTC); None when
    they never do within two weeks (zones too far apart for the hours)."""
    for start, end in allowed_intervals(now, rules, zones):
        if end > now:
            return max(start, now)
    return None


def next_permitted_time(
    now: datetime, window: CallingWindow | None, rules: Sequence[HoursRule], zones: Sequence[str]
) -> tuple[datetime | None, str | None]:
    """When a number whose local time is any of `zones` may be rung under both the campaign's
    `window` (None: always) and the quiet hours `rules`, and why it waits until then:
    (now, None) when both allow it now; (later, QUIET_HOURS | CALLING_WINDOW) naming what is
    closed at `now` (quiet hours first); (None, QUIET_HOURS | CALLING_WINDOW) when no moment within
    two weeks satisfies both, naming which one never opens.

    The earliest moment both are open: each one's next opening from the other's, until they agree.
    """
    at = now
    for _ in range(64):  # each round moves to a later opening; a fortnight has at most a few dozen
        after_window = next_dial_time(at, window, zones)
        if after_window is None:
            return None, CALLING_WINDOW
        after_rules = next_quiet_hours_opening(after_window, rules, zones)
        if after_rules is None:
            return None, QUIET_HOURS
        if after_rules == after_window:
            break
        at = after_rules
    else:
        return None, QUIET_HOURS
    if after_rules == now:
        return now, None
    reason = QUIET_HOURS if not quiet_hours_allow(now, rules, zones) else CALLING_WINDOW
    return after_rules, reason


def calling_intervals(
    start: datetime,
    window: CallingWindow | None,
    rules: Sequence[HoursRule],
    zones: Sequence[str],
    *,
    weeks: int,
) -> list[Interval]:
    """[start, end) intervals (UTC, from `start` for `weeks` weeks) when a number whose local time is
    any of `zones` may be rung: the campaign's `window` (None: always) and the quiet hours `rules`
    both open in every zone."""
    allowed = allowed_intervals(start, rules, zones, weeks=weeks)
    if window is None:
        return allowed
    return intersect_intervals(_merge(list(open_intervals(start, window, zones, weeks=weeks))), allowed)


def never_callable_reason(
    now: datetime, window: CallingWindow | None, rules: Sequence[HoursRule], zones: Sequence[str]
) -> str | None:
    """Why a campaign recipient in `zones` can never be rung (the campaigns scheduler fails it when
    it comes due, with this reason), or None when `next_permitted_time` finds a moment. Both the
    window and the rules repeat weekly, so the answer does not depend on `now`."""
    at, why = next_permitted_time(now, window, rules, zones)
    if at is not None:
        return None
    if window is None:
        return never_permitted_reason(rules, zones)
    if why == QUIET_HOURS:
        if next_dial_time(now, window, zones) is not None:  # each opens, never both at once
            return (
                f"The platform's quiet hours ({'; '.join(r.describe() for r in rules)}) never allow a "
                f"call within the campaign's calling window ({_window_text(window)}) in "
                f"{', '.join(zones) or 'UTC'}"
            )
        return never_permitted_reason(rules, zones)
    return never_open_reason(window, zones)


def never_permitted_reason(rules: Sequence[HoursRule], zones: Sequence[str]) -> str:
    """The recipient-facing reason when the quiet hours never open in all of `zones` at once."""
    where = f"in all of the number's time zones at once ({', '.join(zones)})" if len(zones) > 1 else ""
    hours = "; ".join(r.describe() for r in rules)
    return f"The platform's quiet hours ({hours}) never allow a call {where}".rstrip() + (
        "; give the campaign a timezone that is one of them" if len(zones) > 1 else ""
    )


def outside_quiet_hours_problem(
    now: datetime, e164: str, zones: Sequence[str], quiet_hours: QuietHoursRules | None = None
) -> str | None:
    """Why a single call to `e164` at `now` is refused, or None when the quiet hours allow it
    (`quiet_hours`: the rules, default the shipped file)."""
    rules = (quiet_hours or load_rules()).for_number(e164)
    if quiet_hours_allow(now, rules, zones):
        return None
    opening = next_quiet_hours_opening(now, rules, zones)
    when = f"; next allowed at {opening.isoformat()}" if opening else ""
    return (
        f"Outside the platform's quiet hours for {e164} in {', '.join(zones) or 'UTC'} "
        f"({'; '.join(r.describe() for r in rules)}){when}"
    )
