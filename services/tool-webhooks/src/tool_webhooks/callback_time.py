"""When a callee asked to be called back: the requested time read in their zone, moved into the
campaign's calling window and out of the platform's quiet hours, and said back to them. Pure: the
clock is passed in.

Phrases ("tomorrow at 5pm", "Friday 3pm", "in two hours") are read by `dateparser`
(https://dateparser.readthedocs.io), relative to now in the callee's zone and preferring the
future; an ISO 8601 time without an offset is the callee's local time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateparser

from contracts.calling import next_dial_time
from contracts.campaigns import CallingWindow
from contracts.quiet_hours import HoursRule, next_permitted_time

MAX_TEXT = 200


@dataclass(frozen=True)
class Booking:
    """What was booked: the time asked (`asked`), when it will be dialled (`dial_at`, the asked
    time moved into the calling window), both aware; `zone` the callee's IANA zone."""

    asked: datetime
    dial_at: datetime
    zone: str


class Unbookable(Exception):
    """A requested time that cannot be booked; `message` is said to the callee by the agent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def zone_of(zones: Sequence[str]) -> ZoneInfo:
    """The callee's zone: the first of the call's zones (the campaign's rule), else UTC."""
    for name in zones:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def warm_up() -> None:
    """Load what dateparser loads on its first unreadable text: every language's data, 3.4 s of
    CPU measured here. Done at start, off the loop, so that no callee's first unreadable time
    waits for it (a fresh user's trial saw that tool call time out after 20 s)."""
    parse_requested("2026-13-45T99:99", ZoneInfo("UTC"), datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")))


def parse_requested(text: str, zone: ZoneInfo, now: datetime) -> tuple[datetime, bool] | None:
    """The time `text` names, aware, read in `zone` relative to `now`, and whether it was a phrase
    (not ISO 8601); None when it names none."""
    text = text.strip()[:MAX_TEXT]
    if not text:
        return None
    phrase = False
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        phrase = True
        local_now = now.astimezone(zone).replace(tzinfo=None)
        try:
            at = dateparser.parse(
                text,
                settings={
                    "TIMEZONE": str(zone.key),
                    "RETURN_AS_TIMEZONE_AWARE": True,
                    "PREFER_DATES_FROM": "future",
                    "RELATIVE_BASE": local_now,
                },
            )
        except (ValueError, OverflowError, TypeError):
            # What an LLM passes on is free text: a parser failure is a time we could not read.
            return None
        if at is None:
            return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=zone)
    return at, phrase


def _names_a_time_of_day(text: str, zone: ZoneInfo, now: datetime, asked: datetime) -> bool:
    """Whether a phrase read as `asked` named only a time of day ("at 5pm", "noon"): `asked` is
    today (not "yesterday at noon", "last Friday at 3pm"), and read again from the start of today
    it is the same time (not "two hours ago", which moves with the time it is said at)."""
    local_now = now.astimezone(zone)
    if asked.astimezone(zone).date() != local_now.date():
        return False
    morning = local_now.replace(hour=0, minute=1, second=0, microsecond=0)
    again = parse_requested(text, zone, morning)
    return again is not None and again[0] == asked


def book(
    text: str,
    *,
    zones: Sequence[str],
    window: CallingWindow | None,
    now: datetime,
    max_ahead: timedelta,
    quiet_hours: Sequence[HoursRule] = (),
) -> Booking:
    """The booking for `text`; raises `Unbookable` (unreadable, too far ahead, window never open).

    A phrase naming only a time of day already past today ("at 5pm" said at 6pm) means the next
    such time: a day later. Any other time in the past ("yesterday at noon", "an hour ago", an ISO
    8601 time, which names its date) is refused, as is one more than `max_ahead` away."""
    zone = zone_of(zones)
    parsed = parse_requested(text, zone, now)
    if parsed is None:
        raise Unbookable(
            "unreadable_time", "I couldn't understand that time. Could you say the day and the time?"
        )
    asked, phrase = parsed
    if asked < now:
        if not (phrase and _names_a_time_of_day(text, zone, now, asked)):
            raise Unbookable("past_time", "That time has already passed. When should we call back?")
        asked += timedelta(days=1)
    if asked - now > max_ahead:
        raise Unbookable(
            "too_far_ahead", f"I can only book a call back within the next {max_ahead.days} days."
        )
    # Inside the campaign's window and outside the platform's quiet hours (`quiet_hours`: the rules
    # for the callee's number), as the campaigns scheduler will dial it.
    local_zones = list(zones) or [str(zone.key)]
    if quiet_hours:
        dial_at, _ = next_permitted_time(asked, window, quiet_hours, local_zones)
    else:
        dial_at = next_dial_time(asked, window, local_zones)
    if dial_at is None:
        raise Unbookable(
            "window_closed", "I'm sorry, we can't call back at any time that fits our calling hours."
        )
    return Booking(asked=asked, dial_at=dial_at, zone=str(zone.key))


def spoken(at: datetime, zone: str) -> str:
    """E.g. "Tuesday 1 December at 17:00 (America/Los_Angeles)"."""
    local = at.astimezone(ZoneInfo(zone))
    return f"{local:%A} {local.day} {local:%B} at {local:%H:%M} ({zone})"


def booked_message(booking: Booking) -> str:
    """What the agent tells the callee: the asked time, and the time it moved to if it did."""
    if booking.dial_at == booking.asked:
        return f"Booked: we will call back on {spoken(booking.asked, booking.zone)}."
    return (
        f"That time is outside our calling hours; the call back is booked for "
        f"{spoken(booking.dial_at, booking.zone)}."
    )
