"""What holds a recipient back: quiet hours, the campaign's window and the frequency caps (clocks
passed in; the shipped quiet-hours rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaigns.rules import (
    CAMPAIGN_DAILY_CAP,
    FREQUENCY_CAP,
    Hold,
    cap_release,
    hold_for,
)
from contracts.campaigns import CallingWindow
from contracts.quiet_hours import CALLING_WINDOW, QUIET_HOURS, load_rules

LONDON = "+442079460000"
ZONES = ("Europe/London",)
NOON = datetime(2026, 11, 30, 12, tzinfo=UTC)  # a Monday, 12:00 in London


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def test_under_the_cap_nothing_waits() -> None:
    assert cap_release([], 3, NOON) is None
    assert cap_release([NOON - hours(1), NOON - hours(2)], 3, NOON) is None


def test_at_the_cap_the_release_is_when_the_oldest_counted_dial_leaves_the_day() -> None:
    dials = [NOON - hours(23), NOON - hours(5), NOON - hours(1)]
    assert cap_release(dials, 3, NOON) == NOON + hours(1)
    # A cap of 2: the second-oldest must leave too (23 h ago leaves in 1 h, 5 h ago in 19 h).
    assert cap_release(dials, 2, NOON) == NOON + hours(19)


def test_dials_older_than_a_day_do_not_count() -> None:
    assert cap_release([NOON - hours(24), NOON - hours(30), NOON - hours(2)], 2, NOON) is None


def _hold(now: datetime, **kw: object) -> Hold | None:
    args: dict[str, object] = {
        "dials_everywhere": [],
        "platform_cap": 3,
        "dials_in_campaign": [],
        "campaign_cap": None,
        "quiet_hours": load_rules(),
    }
    args.update(kw)
    window = args.pop("window", None)
    return hold_for(now, LONDON, ZONES, window, **args)  # type: ignore[arg-type]


def test_inside_every_rule_nothing_holds() -> None:
    assert _hold(NOON) is None


def test_quiet_hours_hold_until_eight_local() -> None:
    assert _hold(NOON.replace(hour=6)) == Hold(NOON.replace(hour=8), QUIET_HOURS)


def test_the_campaign_window_holds_inside_the_quiet_hours() -> None:
    window = CallingWindow(start="14:00", end="16:00")
    assert _hold(NOON, window=window) == Hold(NOON.replace(hour=14), CALLING_WINDOW)


def test_the_platform_cap_counts_every_campaign() -> None:
    dials = [NOON - hours(20), NOON - hours(10), NOON - hours(3)]
    assert _hold(NOON, dials_everywhere=dials) == Hold(NOON + hours(4), FREQUENCY_CAP)


def test_a_release_in_the_night_moves_to_the_morning() -> None:
    # The oldest dial (22:00 yesterday, another campaign's zone rules) leaves the day at 22:00
    # tonight, inside the quiet hours: the recipient waits for 08:00 tomorrow.
    dials = [NOON - hours(14), NOON - hours(1), NOON - hours(0.5)]
    hold = _hold(NOON, dials_everywhere=dials)
    assert hold == Hold(NOON + hours(20), FREQUENCY_CAP)  # 08:00 tomorrow, London


def test_the_campaign_cap_only_narrows() -> None:
    mine = [NOON - hours(2)]
    assert _hold(NOON, dials_everywhere=mine, dials_in_campaign=mine, campaign_cap=1) == Hold(
        NOON + hours(22), CAMPAIGN_DAILY_CAP
    )
    assert _hold(NOON, dials_everywhere=mine, dials_in_campaign=mine, campaign_cap=5) is None


def test_hours_that_never_open_say_so() -> None:
    never = CallingWindow(start="09:00", end="10:00", days=[])
    hold = _hold(NOON, window=never)
    assert hold is not None and hold.at is None and hold.waiting_reason == CALLING_WINDOW
    assert hold.reason == "The calling window never opens"
