"""Reading the time a callee asks to be called back at: their zone, phrases and ISO 8601, the
calling window, limits. Pure: the clock is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from contracts.campaigns import CallingWindow
from contracts.quiet_hours import load_rules
from tool_webhooks import callback_time

LA = ZoneInfo("America/Los_Angeles")
# Monday 30 November 2026, 10:00 in Los Angeles.
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=LA).astimezone(UTC)
ZONES = ["America/Los_Angeles"]
MONTH = timedelta(days=30)


def booked(text: str, window: CallingWindow | None = None, zones: list[str] = ZONES) -> callback_time.Booking:
    return callback_time.book(text, zones=zones, window=window, now=NOW, max_ahead=MONTH)


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("tomorrow at 5pm", datetime(2026, 12, 1, 17, 0)),
        ("Friday 3pm", datetime(2026, 12, 4, 15, 0)),
        ("in two hours", datetime(2026, 11, 30, 12, 0)),
        ("December 3 at 2pm", datetime(2026, 12, 3, 14, 0)),
        ("2026-12-01T17:00", datetime(2026, 12, 1, 17, 0)),
        ("2026-12-01T17:00:00-05:00", datetime(2026, 12, 1, 14, 0)),  # an offset given is kept
    ],
)
def test_phrases_and_iso_times_are_read_in_the_callees_zone(text: str, local: datetime) -> None:
    booking = booked(text)
    assert booking.asked == local.replace(tzinfo=LA)
    assert booking.dial_at == booking.asked and booking.zone == "America/Los_Angeles"


@pytest.mark.parametrize("text", ["at 9am", "9am", "at 9:30", "at 9 in the morning"])
def test_a_time_of_day_already_past_today_means_tomorrow(text: str) -> None:
    asked = booked(text).asked
    assert asked.date() == datetime(2026, 12, 1).date() and asked.hour == 9, asked


@pytest.mark.parametrize(
    "text",
    [
        "yesterday at noon",
        "yesterday at 5pm",  # later in the day than now: still yesterday
        "yesterday",
        "last Friday at 3pm",
        "two hours ago",
        "an hour ago",
    ],
)
def test_a_phrase_naming_a_past_day_or_moment_is_refused_not_moved_to_tomorrow(text: str) -> None:
    with pytest.raises(callback_time.Unbookable) as refused:
        booked(text)
    assert refused.value.code == "past_time"
    assert refused.value.message == "That time has already passed. When should we call back?"


def test_another_zone_reads_the_same_words_differently() -> None:
    booking = booked("tomorrow at 5pm", zones=["Europe/Paris"])
    assert booking.asked == datetime(2026, 12, 1, 17, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert callback_time.zone_of([]).key == "UTC"


def test_a_time_outside_the_calling_window_moves_to_its_next_opening() -> None:
    window = CallingWindow(start="09:00", end="17:00", days=[0, 1, 2, 3, 4])
    booking = booked("tomorrow at 8pm", window)
    assert booking.asked == datetime(2026, 12, 1, 20, 0, tzinfo=LA)
    assert booking.dial_at == datetime(2026, 12, 2, 9, 0, tzinfo=LA)
    message = callback_time.booked_message(booking)
    assert "outside our calling hours" in message and "Wednesday 2 December at 09:00" in message


def test_the_answer_says_what_was_booked_in_local_time() -> None:
    message = callback_time.booked_message(booked("tomorrow at 5pm"))
    assert message == "Booked: we will call back on Tuesday 1 December at 17:00 (America/Los_Angeles)."


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("whenever, really", "unreadable_time"),
        ("in 10000000000 days", "unreadable_time"),
        ("\x00\x01", "unreadable_time"),
        ("0001-01-01T00:00", "past_time"),
        ("9999-12-31T23:59:59+14:00", "too_far_ahead"),
        ("", "unreadable_time"),
        ("2026-11-01T10:00", "past_time"),
        ("2026-11-30T09:00", "past_time"),  # an ISO time names its date: not tomorrow
        ("2027-06-01T10:00", "too_far_ahead"),
    ],
)
def test_times_that_cannot_be_booked_are_explained(text: str, code: str) -> None:
    with pytest.raises(callback_time.Unbookable) as refused:
        booked(text)
    assert refused.value.code == code and refused.value.message


def test_a_window_that_never_opens_refuses_the_booking() -> None:
    with pytest.raises(callback_time.Unbookable) as refused:
        booked("tomorrow at 5pm", CallingWindow(start="09:00", end="17:00", days=[]))
    assert refused.value.code == "window_closed"


def test_a_time_in_the_platforms_quiet_hours_moves_to_their_end() -> None:
    rules = load_rules().for_number("+14155550100")  # the shipped rules: 08:00-21:00 local for the US
    booking = callback_time.book(
        "tomorrow at 10pm", zones=ZONES, window=None, now=NOW, max_ahead=MONTH, quiet_hours=rules
    )
    assert booking.asked == datetime(2026, 12, 1, 22, 0, tzinfo=LA)
    assert booking.dial_at == datetime(2026, 12, 2, 8, 0, tzinfo=LA)


def test_warm_up_loads_every_language_the_first_unreadable_time_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # dateparser keeps what it loaded on its loader (private attributes, no public way to ask):
    # the service warms up at start so that no callee's tool call waits seconds for this.
    from dateparser.languages.loader import LocaleDataLoader

    monkeypatch.setattr(LocaleDataLoader, "_loaded_languages", {})
    monkeypatch.setattr(LocaleDataLoader, "_loaded_locales", {})
    callback_time.warm_up()
    assert len(LocaleDataLoader._loaded_languages) > 100
