"""Numbers as spreadsheets hold them, strict E.164 by default, and calling windows over weeks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.calling import (
    Number,
    number_time_zones,
    open_intervals,
    read_number,
    region_problem,
    zones_for,
)
from contracts.campaigns import CallingWindow
from contracts.quiet_hours import load_rules


def test_strict_by_default_exact_e164_only() -> None:
    assert read_number("+14155550103") == Number("+14155550103", ("America/Los_Angeles",), "US", ("CA",))
    for national in ["(415) 555-0103", "4155550103", "14155550103", "+1 415-555-0103", "+1 (415) 5550103"]:
        problem = read_number(national)
        assert isinstance(problem, str) and "E.164" in problem and repr(national) in problem


@pytest.mark.parametrize(
    "given",
    ["(415) 555-0103", "415-555-0103", "415.555.0103", "4155550103", "1 415 555 0103", "+1 415-555-0103"],
)
def test_a_default_region_reads_national_and_spaced_formats(given: str) -> None:
    assert read_number(given, "US") == Number("+14155550103", ("America/Los_Angeles",), "US", ("CA",))


def test_a_default_region_still_refuses_what_is_no_number_there() -> None:
    assert isinstance(read_number("555-0103", "US"), str)  # too short for NANP
    assert isinstance(read_number("(415) 555-0103", "GB"), str)  # not a UK number
    assert read_number("020 7946 0123", "GB") == Number("+442079460123", ("Europe/London",), "GB", ())
    assert isinstance(read_number("", "US"), str)


def test_zones_of_a_number_spanning_several_and_of_a_non_geographic_one() -> None:
    perth = read_number("+61892001234")
    assert isinstance(perth, Number) and perth.zones == ("Australia/Adelaide", "Australia/Perth")
    assert zones_for(perth.zones, "Australia/Perth") == ("Australia/Perth",)
    toll_free = read_number("+18005550101")
    assert isinstance(toll_free, Number) and "Pacific/Honolulu" in toll_free.zones
    assert zones_for((), None) == ("UTC",)


def test_a_number_says_where_it_rings_so_a_worker_process_can_pick_its_quiet_hours() -> None:
    miami = read_number("+13055550100")
    assert isinstance(miami, Number) and (miami.region, miami.states) == ("US", ("FL",))
    toll_free = read_number("+18005550101")
    assert isinstance(toll_free, Number) and (toll_free.region, toll_free.states) == ("US", ())
    toronto = read_number("+14165550100")
    assert isinstance(toronto, Number) and (toronto.region, toronto.states) == ("CA", ())
    rules = load_rules().for_place(miami.region, miami.states)
    assert [r.name for r in rules] == ["country US", "US state FL"]


def test_a_line_without_zone_data_rings_in_its_own_country_not_all_of_nanp() -> None:
    # libphonenumber has no zones for the Jamaican mobile exchange 876-555 and answers with all
    # 42 of the +1 plan's; a toll-free number has no place and keeps them all.
    jamaica = read_number("+18765550101")
    assert isinstance(jamaica, Number) and jamaica.zones == ("America/Jamaica",)
    toll_free = read_number("+18005550101")
    assert isinstance(toll_free, Number) and len(toll_free.zones) == 42
    # Zones libphonenumber names as zone.tab no longer does (Enderbury is Kanton there) stay.
    kiribati = read_number("+68672001234")
    assert isinstance(kiribati, Number) and kiribati.zones == (
        "Pacific/Enderbury",
        "Pacific/Kiritimati",
        "Pacific/Tarawa",
    )
    greenland = read_number("+299221234")
    assert isinstance(greenland, Number) and "America/Godthab" in greenland.zones
    moscow = read_number("+79161234567")  # +7 is Russia and Kazakhstan: Russian zones only
    assert (
        isinstance(moscow, Number) and "Asia/Almaty" not in moscow.zones and "Europe/Moscow" in moscow.zones
    )


@pytest.mark.parametrize(
    "number",
    ["+18765550101", "+18769270101", "+18005550101", "+14155550101", "+61892001234", "+79161234567"],
)
def test_the_gateway_and_the_scheduler_read_the_same_zones(number: str) -> None:
    read = read_number(number)
    assert isinstance(read, Number) and number_time_zones(number) == read.zones


def test_regions_are_iso_codes_libphonenumber_knows() -> None:
    assert region_problem("US") is None and region_problem("GB") is None
    for bad in ["us", "USA", "XX", ""]:
        assert region_problem(bad)


def test_open_intervals_repeat_week_after_week_from_the_start() -> None:
    monday_noon = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
    window = CallingWindow(start="09:00", end="17:00", days=[0, 1, 2, 3, 4])
    intervals = list(open_intervals(monday_noon, window, ["UTC"], weeks=3))
    assert intervals[0] == (monday_noon, monday_noon.replace(hour=17))  # clipped to the start
    assert intervals[1][0] == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert len(intervals) == 15  # three weeks of weekdays (the first one clipped)
    assert all(b - a <= timedelta(hours=8) for a, b in intervals)
    assert all(a.weekday() < 5 for a, _ in intervals)
    assert [a for a, _ in intervals] == sorted(a for a, _ in intervals)
