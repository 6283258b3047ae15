"""The duration estimate of /batch-calling/validate: concurrency, call length, calling windows and
the platform's quiet hours."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from contracts.campaigns import CallingWindow
from contracts.quiet_hours import load_rules, number_region_and_state, parse_rules
from gateway.intake import Callability, GroupKey, estimate

MONDAY_8AM_UTC = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
# Rules that never hold a call back: what the window alone does.
OPEN_ALL_DAY = parse_rules({"default": {"windows": [{"start": "00:00", "end": "00:00"}]}})
LONDON = "+442079460000"
SAN_FRANCISCO = "+14155550103"
MIAMI = "+13055551234"  # Florida: 08:00-20:00


def _groups(
    callability: Callability, zones: tuple[str, ...], n: int, number: str = LONDON
) -> Counter[GroupKey]:
    return Counter({callability.key(number_region_and_state(number), zones): n})


def test_without_a_window_lines_work_in_parallel_and_a_call_takes_its_time() -> None:
    always = Callability(None, OPEN_ALL_DAY)
    result = estimate(
        _groups(always, ("America/New_York",), 100), concurrency=10, call_s=60, start=MONDAY_8AM_UTC,
        callability=always,
    )  # fmt: skip
    assert result["duration_seconds"] == 600
    few = estimate(
        _groups(always, ("UTC",), 3), concurrency=10, call_s=60, start=MONDAY_8AM_UTC, callability=always
    )
    assert few["duration_seconds"] == 60  # three calls at once still take a call's time


def test_calls_wait_for_the_window_and_stop_when_it_closes() -> None:
    window = Callability(CallingWindow(start="09:00", end="10:00", days=[0, 1, 2, 3, 4]), OPEN_ALL_DAY)
    # 90 minutes of calling on one line, an hour a day from 09:00 UTC: Monday 09:00 to Tuesday 09:30.
    result = estimate(
        _groups(window, ("UTC",), 90), concurrency=1, call_s=60, start=MONDAY_8AM_UTC, callability=window
    )
    assert result["finishes_at_unix"] == int(datetime(2026, 3, 3, 9, 30, tzinfo=UTC).timestamp())
    assert result["not_callable"] == 0


def test_the_estimate_starts_when_the_first_call_can_be_placed_not_now() -> None:
    window = Callability(CallingWindow(start="09:00", end="10:00", days=[0, 1, 2, 3, 4]), OPEN_ALL_DAY)
    result = estimate(
        _groups(window, ("UTC",), 30), concurrency=1, call_s=60, start=MONDAY_8AM_UTC, callability=window
    )
    nine = int(datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp())
    assert result["starts_at_unix"] == nine
    assert result["duration_seconds"] == 30 * 60 and result["finishes_at_unix"] == nine + 30 * 60


def test_the_quiet_hours_delay_the_first_call_too() -> None:
    # No window, but London's quiet hours open at 08:00 local: from 06:00 UTC the first call waits.
    hours = Callability(None, load_rules())
    six = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    result = estimate(
        _groups(hours, ("Europe/London",), 1), concurrency=1, call_s=60, start=six, callability=hours
    )
    assert result["starts_at_unix"] == int(MONDAY_8AM_UTC.timestamp())
    assert result["not_callable"] == 0


def test_recipients_whose_window_never_opens_in_all_their_zones_are_not_callable() -> None:
    window = Callability(CallingWindow(start="09:00", end="10:00"), OPEN_ALL_DAY)
    groups = _groups(window, ("Australia/Perth", "Australia/Sydney"), 5) + _groups(
        window, ("Australia/Perth",), 1
    )
    result = estimate(groups, concurrency=1, call_s=60, start=MONDAY_8AM_UTC, callability=window)
    assert result["not_callable"] == 5 and result["recipients"] == 6
    assert result["duration_seconds"] is not None and result["duration_seconds"] <= 86_400


def test_recipients_the_quiet_hours_never_allow_within_the_window_are_not_callable() -> None:
    # A 20:00-23:00 window: Florida's quiet hours end at 20:00 (never callable), California's at
    # the TCPA's 21:00 (callable 20:00-21:00).
    hours = Callability(CallingWindow(start="20:00", end="23:00"), load_rules())
    groups = _groups(hours, ("America/New_York",), 4, MIAMI) + _groups(
        hours, ("America/Los_Angeles",), 1, SAN_FRANCISCO
    )
    result = estimate(groups, concurrency=1, call_s=60, start=MONDAY_8AM_UTC, callability=hours)
    assert result["not_callable"] == 4 and result["recipients"] == 5
    reason = hours.never_reason(
        hours.key(number_region_and_state(MIAMI), ("America/New_York",)), MONDAY_8AM_UTC
    )
    assert reason is not None and "quiet hours" in reason and "US state FL" in reason
    assert (
        hours.never_reason(
            hours.key(number_region_and_state(SAN_FRANCISCO), ("America/Los_Angeles",)), MONDAY_8AM_UTC
        )
        is None
    )


def test_nobody_callable_has_no_finish() -> None:
    hours = Callability(CallingWindow(start="22:00", end="23:00"), load_rules())
    result = estimate(
        _groups(hours, ("UTC",), 2), concurrency=1, call_s=60, start=MONDAY_8AM_UTC, callability=hours
    )
    assert result["not_callable"] == 2
    assert result["finishes_at_unix"] is None and result["duration_seconds"] is None
