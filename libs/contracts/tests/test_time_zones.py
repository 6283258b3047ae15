"""What a campaign `timezone` may be: an IANA region (or exactly UTC), never an abbreviation,
a fixed offset or a legacy alias."""

from __future__ import annotations

import pytest

from contracts.campaigns import time_zone_problem


@pytest.mark.parametrize(
    "name",
    [
        "America/New_York",
        "Australia/Perth",
        "America/Indiana/Indianapolis",
        "America/Phoenix",
        "Europe/London",
        "UTC",
    ],
)
def test_regions_and_explicit_utc_are_accepted(name: str) -> None:
    assert time_zone_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [
        "EST",
        "MST",
        "HST",
        "GMT",
        "CET",
        "EST5EDT",
        "PST8PDT",
        "Etc/GMT+5",
        "Etc/UTC",
        "US/Eastern",
        "Japan",
        "Zulu",
    ],
)
def test_abbreviations_fixed_offsets_and_aliases_are_refused_naming_a_region(name: str) -> None:
    problem = time_zone_problem(name)
    assert problem is not None and "America/New_York" in problem and repr(name) in problem


@pytest.mark.parametrize(
    "name", ["America/Nowhere", "Europe/../etc/passwd", "America/", "utc", "Australia/perth"]
)
def test_unknown_names_are_refused(name: str) -> None:
    assert time_zone_problem(name) is not None


@pytest.mark.parametrize("name", ["Mars/Olympus", "Atlantis", "America/Nowhere", "Etc/GMT+99"])
def test_a_name_that_is_no_zone_at_all_is_called_unknown_not_an_abbreviation(name: str) -> None:
    problem = time_zone_problem(name)
    assert problem == f"Unknown time zone {name!r}: use an IANA region such as America/New_York"


def test_zone_data_ships_with_the_package() -> None:
    """tzdata is a dependency: no host zone database needed (a slim image must not fall back to UTC)."""
    import importlib.resources

    assert importlib.resources.files("tzdata").joinpath("zoneinfo", "Australia", "Perth").is_file()
