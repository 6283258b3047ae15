"""Campaign rules: numbers, calling windows across DST, retries, auto-pause, AIMD. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from campaigns import domain
from contracts.campaigns import CallingWindow, RetryDelays

# ---- numbers ------------------------------------------------------------------------------------


def test_valid_e164_numbers_pass_and_invalid_ones_get_a_reason() -> None:
    assert domain.normalize_number("+14155550123") == ("+14155550123", None)
    for bad in ["4155550123", "+1555", "+15555550123", "+1 415 555 0123", "hello", ""]:
        number, reason = domain.normalize_number(bad)
        assert number is None and reason


def test_time_zone_comes_from_the_number_with_fallbacks() -> None:
    assert domain.recipient_time_zones("+14155550123", None) == ("America/Los_Angeles",)
    assert domain.recipient_time_zones("+442079460123", None) == ("Europe/London",)
    assert domain.recipient_time_zones("+80012345678", "Europe/Paris") == ("Europe/Paris",)
    assert domain.recipient_time_zones("+80012345678", "Not/AZone") == ("UTC",)
    assert domain.recipient_time_zones("+80012345678", None) == ("UTC",)


PERTH_LANDLINE = "+61892001234"  # libphonenumber: ('Australia/Adelaide', 'Australia/Perth')
SYDNEY_LANDLINE = "+61292001234"


def test_a_number_spanning_zones_keeps_all_of_them_unless_the_campaign_zone_is_one() -> None:
    assert domain.recipient_time_zones(PERTH_LANDLINE, None) == ("Australia/Adelaide", "Australia/Perth")
    assert domain.recipient_time_zones(PERTH_LANDLINE, "Australia/Perth") == ("Australia/Perth",)
    assert domain.recipient_time_zones(PERTH_LANDLINE, "Australia/Adelaide") == ("Australia/Adelaide",)
    # A campaign zone that is not one of the number's: the number's zones rule.
    assert domain.recipient_time_zones(PERTH_LANDLINE, "Australia/Sydney") == (
        "Australia/Adelaide",
        "Australia/Perth",
    )
    assert domain.recipient_time_zones(SYDNEY_LANDLINE, "Australia/Perth") == ("Australia/Sydney",)
    # Alaska (+1 907: Anchorage and Adak), Newfoundland/Labrador (+1 709), Russian mobiles.
    assert domain.recipient_time_zones("+19075550101", None) == ("America/Adak", "America/Anchorage")
    assert domain.recipient_time_zones("+17095550101", "America/St_Johns") == ("America/St_Johns",)
    assert len(domain.recipient_time_zones("+79161234567", None)) > 10
    # Single-zone neighbours: Indiana and Arizona area codes, Canadian numbers.
    assert domain.recipient_time_zones("+13175550101", None) == ("America/New_York",)
    assert domain.recipient_time_zones("+16025550101", "America/New_York") == ("America/Phoenix",)
    assert domain.recipient_time_zones("+14165550101", None) == ("America/Toronto",)
    assert domain.recipient_time_zones("+16045550101", None) == ("America/Vancouver",)
    toll_free = domain.recipient_time_zones("+18005550101", None)
    assert "America/New_York" in toll_free and "Pacific/Honolulu" in toll_free
    assert domain.recipient_time_zones("+18005550101", "America/Chicago") == ("America/Chicago",)


def test_attempt_message_id_is_deterministic_and_distinct_per_attempt() -> None:
    a = domain.attempt_message_id("c1", "r0", 1)
    assert a == domain.attempt_message_id("c1", "r0", 1)
    assert len({a, domain.attempt_message_id("c1", "r0", 2), domain.attempt_message_id("c1", "r1", 1)}) == 3
    # no ambiguity from concatenation
    assert domain.attempt_message_id("c1", "r01", 1) != domain.attempt_message_id("c1r", "01", 1)


# ---- calling windows ----------------------------------------------------------------------------

NY = "America/New_York"
WEEKDAYS_9_TO_17 = CallingWindow(start="09:00", end="17:00", days=[0, 1, 2, 3, 4])


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_no_window_means_now() -> None:
    now = _utc(2026, 3, 4, 3, 0)
    assert domain.next_dial_time(now, None, NY) == now


def test_inside_the_window_dials_now() -> None:
    now = _utc(2026, 1, 14, 15, 0)  # Wed 10:00 EST
    assert domain.next_dial_time(now, WEEKDAYS_9_TO_17, NY) == now


def test_before_opening_waits_until_local_opening() -> None:
    now = _utc(2026, 1, 14, 12, 0)  # Wed 07:00 EST
    assert domain.next_dial_time(now, WEEKDAYS_9_TO_17, NY) == _utc(2026, 1, 14, 14, 0)


def test_end_is_exclusive_and_weekend_skips_to_monday() -> None:
    now = _utc(2026, 1, 16, 22, 0)  # Fri 17:00 EST exactly
    assert domain.next_dial_time(now, WEEKDAYS_9_TO_17, NY) == _utc(2026, 1, 19, 14, 0)


def test_dst_spring_forward_opening_uses_the_new_offset() -> None:
    # US DST starts Sun 2026-03-08: Friday opens at 14:00 UTC (EST), Monday at 13:00 UTC (EDT).
    friday_evening = _utc(2026, 3, 6, 23, 0)
    assert domain.next_dial_time(friday_evening, WEEKDAYS_9_TO_17, NY) == _utc(2026, 3, 9, 13, 0)


def test_dst_fall_back_opening_uses_the_new_offset() -> None:
    # US DST ends Sun 2026-11-01: Monday 09:00 is EST again (14:00 UTC).
    saturday = _utc(2026, 10, 31, 18, 0)
    assert domain.next_dial_time(saturday, WEEKDAYS_9_TO_17, NY) == _utc(2026, 11, 2, 14, 0)


def test_dst_same_utc_instant_is_inside_in_summer_and_outside_in_winter() -> None:
    window = CallingWindow(start="09:00", end="10:00")
    assert domain.next_dial_time(_utc(2026, 7, 1, 13, 30), window, NY) == _utc(
        2026, 7, 1, 13, 30
    )  # 09:30 EDT
    assert domain.next_dial_time(_utc(2026, 1, 7, 13, 30), window, NY) == _utc(2026, 1, 7, 14, 0)  # 08:30 EST


def test_window_crossing_midnight_belongs_to_the_opening_day() -> None:
    window = CallingWindow(start="22:00", end="02:00", days=[4])  # Friday night only
    sat_1am = _utc(2026, 1, 17, 6, 0)  # Sat 01:00 EST, inside Friday's window
    assert domain.next_dial_time(sat_1am, window, NY) == sat_1am
    sat_3am = _utc(2026, 1, 17, 8, 0)
    assert domain.next_dial_time(sat_3am, window, NY) == _utc(2026, 1, 24, 3, 0)


def test_window_in_another_zone_and_never_opening() -> None:
    window = CallingWindow(start="09:00", end="17:00")
    now = _utc(2026, 1, 14, 12, 0)  # 12:00 London (GMT)
    assert domain.next_dial_time(now, window, "Europe/London") == now
    assert domain.next_dial_time(now, CallingWindow(start="09:00", end="17:00", days=[]), NY) is None
    assert domain.next_dial_time(now, CallingWindow(start="9am", end="17:00"), NY) is None


NINE_TO_EIGHT = CallingWindow(start="09:00", end="20:00")
PERTH_ZONES = ("Australia/Adelaide", "Australia/Perth")


def test_perth_is_not_called_at_nine_in_adelaide() -> None:
    # Summer: Adelaide is UTC+10:30 (ACDT), Perth UTC+8. 09:00 Adelaide = 06:30 Perth.
    nine_adelaide = _utc(2026, 1, 14, 22, 30)
    nine_perth = _utc(2026, 1, 15, 1, 0)
    assert domain.next_dial_time(nine_adelaide, NINE_TO_EIGHT, PERTH_ZONES) == nine_perth
    assert domain.next_dial_time(nine_perth, NINE_TO_EIGHT, PERTH_ZONES) == nine_perth
    # The window closes at the earliest closing: 20:00 Adelaide = 17:30 Perth (09:30 UTC).
    assert domain.next_dial_time(_utc(2026, 1, 15, 9, 29), NINE_TO_EIGHT, PERTH_ZONES) == _utc(
        2026, 1, 15, 9, 29
    )
    assert domain.next_dial_time(_utc(2026, 1, 15, 9, 30), NINE_TO_EIGHT, PERTH_ZONES) == _utc(
        2026, 1, 16, 1, 0
    )
    # The campaign said Perth: 09:00 Perth exactly, until 20:00 Perth.
    perth = ("Australia/Perth",)
    assert domain.next_dial_time(nine_adelaide, NINE_TO_EIGHT, perth) == nine_perth
    assert domain.next_dial_time(_utc(2026, 1, 15, 11, 59), NINE_TO_EIGHT, perth) == _utc(2026, 1, 15, 11, 59)


def test_perth_and_adelaide_intersection_follows_adelaide_dst() -> None:
    # Winter (ACST, UTC+9:30): 20:00 Adelaide = 18:30 Perth = 10:30 UTC.
    assert domain.next_dial_time(_utc(2026, 7, 15, 10, 29), NINE_TO_EIGHT, PERTH_ZONES) == _utc(
        2026, 7, 15, 10, 29
    )
    assert domain.next_dial_time(_utc(2026, 7, 15, 10, 30), NINE_TO_EIGHT, PERTH_ZONES) == _utc(
        2026, 7, 16, 1, 0
    )
    # Adelaide's DST starts Sun 2026-10-04 02:00: Saturday's window closes at 10:30 UTC, Sunday's at 09:30.
    assert domain.next_dial_time(_utc(2026, 10, 3, 10, 0), NINE_TO_EIGHT, PERTH_ZONES) == _utc(
        2026, 10, 3, 10, 0
    )
    assert domain.next_dial_time(_utc(2026, 10, 4, 10, 0), NINE_TO_EIGHT, PERTH_ZONES) == _utc(
        2026, 10, 5, 1, 0
    )


def test_us_zones_from_new_york_to_los_angeles_share_a_window() -> None:
    zones = (
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Phoenix",
        "America/Los_Angeles",
    )
    # Opens 09:00 Los Angeles (17:00 UTC in winter), closes 20:00 New York (01:00 UTC).
    assert domain.next_dial_time(_utc(2026, 1, 14, 14, 0), NINE_TO_EIGHT, zones) == _utc(2026, 1, 14, 17, 0)
    assert domain.next_dial_time(_utc(2026, 1, 15, 0, 59), NINE_TO_EIGHT, zones) == _utc(2026, 1, 15, 0, 59)
    assert domain.next_dial_time(_utc(2026, 1, 15, 1, 0), NINE_TO_EIGHT, zones) == _utc(2026, 1, 15, 17, 0)
    # Summer: Phoenix keeps UTC-7 (no DST) and so opens at 16:00 UTC like Los Angeles (PDT).
    assert domain.next_dial_time(_utc(2026, 7, 14, 14, 0), NINE_TO_EIGHT, zones) == _utc(2026, 7, 14, 16, 0)


def test_weekdays_apply_per_zone_across_the_date_line() -> None:
    monday_only = CallingWindow(start="09:00", end="20:00", days=[0])
    # Guam's Monday and Pago Pago's Monday never overlap (21 h apart).
    assert (
        domain.next_dial_time(_utc(2026, 1, 14, 0, 0), monday_only, ("Pacific/Guam", "Pacific/Pago_Pago"))
        is None
    )
    assert domain.next_dial_time(_utc(2026, 1, 14, 0, 0), monday_only, ("Pacific/Guam",)) == _utc(
        2026, 1, 18, 23, 0
    )


def test_an_empty_intersection_never_opens_and_says_why() -> None:
    narrow = CallingWindow(start="09:00", end="10:00")
    zones = ("Australia/Perth", "Australia/Sydney")
    assert domain.next_dial_time(_utc(2026, 1, 14, 0, 0), narrow, zones) is None
    reason = domain.never_open_reason(narrow, zones)
    assert "Australia/Perth" in reason and "Australia/Sydney" in reason and "timezone" in reason
    # Toll-free +1 800 spans Guam to Pago Pago: 09:00-20:00 everywhere at once only in a
    # 30-minute winter slot (23:00-23:30 UTC) and never in summer (Bermuda and St John's on DST).
    toll_free = domain.recipient_time_zones("+18005550101", None)
    assert domain.next_dial_time(_utc(2026, 1, 14, 12, 0), NINE_TO_EIGHT, toll_free) == _utc(
        2026, 1, 14, 23, 0
    )
    assert domain.next_dial_time(_utc(2026, 1, 14, 23, 30), NINE_TO_EIGHT, toll_free) == _utc(
        2026, 1, 15, 23, 0
    )
    assert domain.next_dial_time(_utc(2026, 7, 14, 12, 0), NINE_TO_EIGHT, toll_free) is None


def test_whole_day_windows_in_several_zones_are_always_open() -> None:
    always = CallingWindow(start="00:00", end="00:00")
    now = _utc(2026, 3, 8, 7, 30)  # the US spring-forward night
    assert domain.next_dial_time(now, always, ("America/New_York", "Australia/Perth")) == now


# ---- retries ------------------------------------------------------------------------------------


def test_completed_is_always_final() -> None:
    decision = domain.decide_outcome("completed", 0, 5, RetryDelays())
    assert decision.final and decision.status == "completed"


@pytest.mark.parametrize(
    ("outcome", "delay"), [("no_answer", 300), ("busy", 120), ("failed", 600), ("voicemail", 1800)]
)
def test_retryable_outcomes_wait_their_delay_while_retries_remain(outcome: str, delay: int) -> None:
    decision = domain.decide_outcome(outcome, 1, 2, RetryDelays(), delay_scale=0.5)
    assert not decision.final and decision.status == "scheduled" and decision.retry_in_s == delay * 0.5


def test_retries_exhausted_or_campaign_stopped_is_final_with_the_outcome() -> None:
    assert domain.decide_outcome("busy", 2, 2, RetryDelays()).status == "busy"
    assert domain.decide_outcome("busy", 0, 0, RetryDelays()).final
    assert domain.decide_outcome("busy", 0, 2, RetryDelays(), may_retry=False).status == "busy"
    assert domain.decide_outcome("weird", 0, 0, RetryDelays()).status == "failed"


def test_custom_retry_delays() -> None:
    assert domain.decide_outcome("busy", 0, 1, RetryDelays(busy=7)).retry_in_s == 7


# ---- auto-pause, failure, AIMD ------------------------------------------------------------------


def test_auto_pause_needs_a_full_window_above_the_ratio() -> None:
    recent = ""
    for _ in range(4):
        recent = domain.push_outcome(recent, "failed", 5)
    assert not domain.should_auto_pause(recent, 5, 0.8)  # window not full
    recent = domain.push_outcome(recent, "failed", 5)
    assert domain.should_auto_pause(recent, 5, 0.8)
    recent = domain.push_outcome(recent, "completed", 5)  # 4/5 = 0.8, not above
    assert len(recent) == 5 and not domain.should_auto_pause(recent, 5, 0.8)
    assert not domain.should_auto_pause("FFFFF", 5, 0)  # 0 disables
    assert domain.push_outcome("", "busy", 3) == "o"


def test_campaign_fails_only_when_no_dial_was_ever_accepted() -> None:
    assert domain.could_not_run(0, 3, 3)
    assert not domain.could_not_run(0, 2, 3)
    assert not domain.could_not_run(1, 10, 3)


def test_aimd_halves_on_429_and_recovers_slowly_to_the_limit() -> None:
    t0 = _utc(2026, 1, 1, 12, 0)
    throttle, at = domain.throttle_on_rate_limit(None, 10, 8, decreased_at=None, now=t0, hold_s=2)
    assert (throttle, at) == (4, t0)
    assert domain.effective_limit(10, throttle) == 4
    # a burst of 429s from the same overload halves once
    soon = t0 + timedelta(seconds=1)
    assert domain.throttle_on_rate_limit(throttle, 10, 8, decreased_at=at, now=soon, hold_s=2) == (4, t0)
    later = t0 + timedelta(seconds=3)
    assert domain.throttle_on_rate_limit(throttle, 10, 8, decreased_at=at, now=later, hold_s=2) == (2, later)
    assert domain.throttle_on_rate_limit(1.0, 10, 1, decreased_at=None, now=t0, hold_s=2)[0] == 1  # floor
    steps = 0
    current: float | None = 2.0
    while current is not None:
        current = domain.throttle_on_success(current, 10)
        steps += 1
    assert steps > 10  # slow: more than one success per step
    assert domain.effective_limit(10, None) == 10


def test_every_retryable_outcome_has_a_retry_delay_and_completed_is_never_retried() -> None:
    assert set(domain.RETRYABLE_OUTCOMES) <= set(RetryDelays.model_fields)
    assert domain.RETRYABLE_OUTCOMES < domain.CALL_OUTCOMES and "completed" not in domain.RETRYABLE_OUTCOMES


def test_a_campaign_that_reached_nobody_says_so_and_one_that_reached_someone_does_not() -> None:
    assert (
        domain.nobody_reached_reason({"failed": 3, "skipped_dnc": 1}, "Quiet hours never allow a call")
        == "No recipient was reached: 3 failed, 1 skipped_dnc; first failure: Quiet hours never allow a call"
    )
    assert domain.nobody_reached_reason({"no_answer": 2}, None) == "No recipient was reached: 2 no_answer"
    assert domain.nobody_reached_reason({"completed": 1, "failed": 9}, "x") is None
    assert domain.nobody_reached_reason({"opted_out": 1}, None) is None
    assert domain.nobody_reached_reason({}, None) is None


@pytest.mark.parametrize(
    ("status_code", "error", "detail", "refusal", "reason"),
    [
        # ElevenLabs' success:false with a message no rule recognises: its words are kept.
        (
            502,
            "Call could not be placed",
            "Number is blocked by the carrier",
            None,
            "502 Call could not be placed: Number is blocked by the carrier",
        ),
        (502, "Call could not be placed", None, None, "502 Call could not be placed"),
        (404, "Phone number not found: phnum_x", "  ", None, "404 Phone number not found: phnum_x"),
        (
            422,
            "Carrier refused the number",
            "Twilio 21211: invalid 'To'",
            "recipient",
            "Carrier refused the number: Twilio 21211: invalid 'To'",
        ),
        (502, "Call could not be placed", "x" * 400, None, "502 Call could not be placed: " + "x" * 300),
    ],
)
def test_a_failed_dial_reason_keeps_what_elevenlabs_said(
    status_code: int, error: str, detail: str | None, refusal: str | None, reason: str
) -> None:
    assert domain.dial_failure_reason(status_code, error, detail, refusal) == reason
