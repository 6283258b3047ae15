"""Platform quiet hours: the shipped rules file, a number's country and US state, and when a call
may be placed under the quiet hours and a campaign's window (clocks passed in)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts.calling import recipient_time_zones
from contracts.campaigns import CallingWindow
from contracts.quiet_hours import (
    CALLING_WINDOW,
    QUIET_HOURS,
    load_rules,
    next_permitted_time,
    number_region_and_state,
    outside_quiet_hours_problem,
    parse_rules,
    quiet_hours_allow,
)

MIAMI = "+13055551234"  # Florida: 08:00-20:00 on top of the TCPA's 08:00-21:00
SAN_FRANCISCO = "+14155550103"
DALLAS = "+12145550100"
PARIS = "+33142685300"
LONDON = "+442079460000"
PERTH_OR_ADELAIDE = "+61892001234"
TOLL_FREE = "+18005550100"

# Monday 30 November 2026.
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_the_shipped_file_reads_and_every_rule_names_its_source() -> None:
    rules = load_rules()
    assert rules.default.windows[0].start == "08:00" and rules.default.windows[0].end == "21:00"
    for rule in [rules.default, *rules.countries.values(), *rules.us_states.values()]:
        assert rule.source, rule.name


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (MIAMI, ("US", ("FL",))),
        (SAN_FRANCISCO, ("US", ("CA",))),  # "San Francisco, CA"
        (DALLAS, ("US", ("TX",))),  # "Texas"
        ("+12065550100", ("US", ("WA",))),  # "Washington State"
        ("+12016310100", ("US", ("NJ", "NY"))),  # a New Jersey area code, an exchange "New York, NY"
        (TOLL_FREE, ("US", ())),  # no geography
        ("+14165550100", ("CA", ())),  # Canada is a country, not a state
        (PARIS, ("FR", ())),
        ("not a number", (None, ())),
    ],
)
def test_region_and_states_come_from_libphonenumber(
    number: str, expected: tuple[str | None, tuple[str, ...]]
) -> None:
    assert number_region_and_state(number) == expected


def test_a_number_whose_exchange_lies_in_another_state_keeps_both_states_hours() -> None:
    rules = parse_rules(
        {
            "default": {"windows": [{"start": "08:00", "end": "21:00"}]},
            "countries": {"US": {"windows": [{"start": "08:00", "end": "21:00"}], "source": "TCPA"}},
            "us_states": {
                "NJ": {"windows": [{"start": "09:00", "end": "20:00"}], "source": "NJ"},
                "NY": {"windows": [{"start": "10:00", "end": "19:00"}], "source": "NY"},
            },
        }
    )
    names = [r.name for r in rules.for_number("+12016310100")]
    assert names == ["country US", "US state NJ", "US state NY"]
    assert [r.name for r in rules.for_number("+12012220100")] == ["country US", "US state NJ"]


def test_a_state_rule_applies_beside_the_countrys() -> None:
    names = [r.name for r in load_rules().for_number(MIAMI)]
    assert names == ["country US", "US state FL"]
    assert [r.name for r in load_rules().for_number(SAN_FRANCISCO)] == ["country US"]
    assert [r.name for r in load_rules().for_number(LONDON)] == ["default"]


def test_default_hours_are_8_to_21_local() -> None:
    rules = load_rules().for_number(LONDON)
    zones = ("Europe/London",)
    assert not quiet_hours_allow(at(30, 7, 59), rules, zones)
    assert quiet_hours_allow(at(30, 8, 0), rules, zones)
    assert quiet_hours_allow(at(30, 20, 59), rules, zones)
    assert not quiet_hours_allow(at(30, 21, 0), rules, zones)


def test_florida_stops_at_20_new_york_time() -> None:
    rules = load_rules().for_number(MIAMI)
    zones = recipient_time_zones(MIAMI, None)
    # 20:30 in New York is 01:30 UTC the next day (EST, UTC-5).
    assert not quiet_hours_allow(datetime(2026, 12, 1, 1, 30, tzinfo=UTC), rules, zones)
    # The next call may go at 08:00 New York time, 13:00 UTC.
    assert next_permitted_time(datetime(2026, 12, 1, 1, 30, tzinfo=UTC), None, rules, zones) == (
        datetime(2026, 12, 1, 13, 0, tzinfo=UTC),
        QUIET_HOURS,
    )


def test_texas_sunday_starts_at_noon() -> None:
    rules = load_rules().for_number(DALLAS)
    zones = ("America/Chicago",)
    sunday_10_local = at(29, 16)  # 10:00 CST
    assert next_permitted_time(sunday_10_local, None, rules, zones) == (at(29, 18), QUIET_HOURS)


def test_france_skips_lunch_and_the_weekend() -> None:
    rules = load_rules().for_number(PARIS)
    zones = ("Europe/Paris",)
    # Monday 13:30 Paris (12:30 UTC): lunch, next at 14:00 Paris.
    assert next_permitted_time(at(30, 12, 30), None, rules, zones) == (at(30, 13), QUIET_HOURS)
    # Saturday noon: Monday 10:00 Paris.
    assert next_permitted_time(at(28, 11), None, rules, zones) == (at(30, 9), QUIET_HOURS)


def test_a_campaign_window_only_narrows() -> None:
    rules = load_rules().for_number(LONDON)
    zones = ("Europe/London",)
    wide = CallingWindow(start="06:00", end="23:00")
    # 07:00 London: the campaign's window is open but the quiet hours are not.
    assert next_permitted_time(at(30, 7), wide, rules, zones) == (at(30, 8), QUIET_HOURS)
    # 22:00: the campaign's window is open, the quiet hours closed until 08:00 tomorrow.
    assert next_permitted_time(at(30, 22), wide, rules, zones) == (
        datetime(2026, 12, 1, 8, tzinfo=UTC),
        QUIET_HOURS,
    )
    narrow = CallingWindow(start="10:00", end="12:00")
    assert next_permitted_time(at(30, 9), narrow, rules, zones) == (at(30, 10), CALLING_WINDOW)
    assert next_permitted_time(at(30, 11), narrow, rules, zones) == (at(30, 11), None)


def test_every_candidate_zone_must_be_inside_the_hours() -> None:
    rules = load_rules().for_number(PERTH_OR_ADELAIDE)
    zones = recipient_time_zones(PERTH_OR_ADELAIDE, None)
    assert set(zones) == {"Australia/Adelaide", "Australia/Perth"}
    # Monday 09:00 in Adelaide (22:30 UTC Sunday, ACDT +10:30) is 06:30 in Perth (AWST +8):
    # the first moment both are open is 09:00 in Perth, 01:00 UTC Monday.
    assert next_permitted_time(at(29, 22, 30), None, rules, zones) == (at(30, 1), QUIET_HOURS)


def test_hours_that_never_meet_in_all_zones_are_none() -> None:
    rules = parse_rules(
        {"default": {"source": "test", "windows": [{"start": "09:00", "end": "10:00"}]}}
    ).for_number(LONDON)
    assert next_permitted_time(MONDAY, None, rules, ("Australia/Perth", "Australia/Sydney")) == (
        None,
        QUIET_HOURS,
    )


def test_a_window_that_never_opens_is_named() -> None:
    rules = load_rules().for_number(LONDON)
    never = CallingWindow(start="10:00", end="11:00", days=[])
    assert next_permitted_time(MONDAY, never, rules, ("Europe/London",)) == (None, CALLING_WINDOW)


def test_single_call_problem_names_the_rules_and_the_next_opening() -> None:
    problem = outside_quiet_hours_problem(at(30, 3), MIAMI, ("America/New_York",))
    assert problem is not None
    assert "US state FL: 08:00-20:00" in problem and "2026-11-30T13:00:00+00:00" in problem
    assert outside_quiet_hours_problem(at(30, 15), MIAMI, ("America/New_York",)) is None
