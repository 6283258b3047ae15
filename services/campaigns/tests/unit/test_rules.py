"""What holds a recipient back: quiet hours, the campaign's window and the frequency caps (clocks
passed in; the shipped quiet-hours rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from campaigns.rules import (
    CAMPAIGN_DAILY_CAP,
    FREQUENCY_CAP,
    CallerId,
    Hold,
    budget_problem,
    cap_release,
    choose_caller_id,
    closeness,
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


# ---- caller-ID pools ---------------------------------------------------------------------------


def _caller(pid: str, e164: str | None, cap: int | None = None, dials: int = 0) -> CallerId:
    return CallerId(pid, e164, cap, [NOON - timedelta(minutes=m + 1) for m in range(dials)], dials)


def test_closeness_is_area_code_then_country() -> None:
    assert closeness("+14155550100", "+14155551234") == 2
    assert closeness("+12125550100", "+14155551234") == 1
    assert closeness("+442079460000", "+14155551234") == 0
    assert closeness(None, "+14155551234") == 0
    assert closeness("+447700900123", "+447700900456") == 1  # mobiles have no area code


def test_the_pool_prefers_the_recipients_area_code_then_country() -> None:
    pool = [_caller("ny", "+12125550100"), _caller("sf", "+14155550100"), _caller("uk", "+442079460000")]
    assert choose_caller_id(pool, "+14155551234", NOON) == pool[1]
    assert choose_caller_id(pool, "+13105551234", NOON) == pool[0]  # US, no LA number: first US one
    assert choose_caller_id(pool, "+442079461234", NOON) == pool[2]


def test_equals_rotate_by_fewest_dials_in_the_campaign() -> None:
    pool = [_caller("a", "+14155550100", dials=2), _caller("b", "+14155550101", dials=1)]
    assert choose_caller_id(pool, "+14155551234", NOON) == pool[1]
    unknown = [_caller("a", None, dials=1), _caller("b", None, dials=1)]
    assert choose_caller_id(unknown, "+14155551234", NOON) == unknown[0]  # then pool order


def test_a_number_at_its_cap_is_skipped_and_all_capped_waits() -> None:
    pool = [_caller("sf", "+14155550100", cap=2, dials=2), _caller("ny", "+12125550100", cap=5, dials=1)]
    assert choose_caller_id(pool, "+14155551234", NOON) == pool[1]
    full = [_caller("sf", "+14155550100", cap=2, dials=2), _caller("ny", "+12125550100", cap=1, dials=1)]
    # sf's older dial (two minutes before noon) leaves the day first: sf may dial again then.
    assert choose_caller_id(full, "+14155551234", NOON) == NOON - timedelta(minutes=2) + timedelta(hours=24)


# ---- budget guard ------------------------------------------------------------------------------


def test_no_budget_never_pauses() -> None:
    assert budget_problem(None, 10**9, 50, 3600, 60) is None


def test_the_next_call_is_reserved_at_the_longest_call_or_the_estimate() -> None:
    # 10 minutes: 8 used, one call in flight; calls so far lasted at most 30 s, assumed 60 s.
    assert budget_problem(10, 8 * 60, 0, 30, 60) is None  # 8 + 1 <= 10
    assert budget_problem(10, 8 * 60, 1, 30, 60) is None  # 8 + 2 <= 10
    problem = budget_problem(10, 8 * 60, 2, 30, 60)  # 8 + 3 > 10
    assert problem is not None and "max_total_minutes 10" in problem and "2 call(s) in flight" in problem
    # A 3-minute call seen: each call is now reserved at 3 minutes.
    assert budget_problem(10, 8 * 60, 0, 180, 60) is not None
