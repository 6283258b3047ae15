"""The shipped NANP prefix -> state table answers what libphonenumber's geocoder answers."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import geocoder
from phonenumbers.geodata import GEOCODE_DATA

from contracts.calling import number_place
from contracts.us_states import derive, state_of_description, table, us_state


def test_the_shipped_table_is_the_one_the_installed_libphonenumber_gives() -> None:
    # Fails after a libphonenumber upgrade that moved a prefix: run `python -m contracts.us_states`.
    assert table() == derive(GEOCODE_DATA)


def test_exchanges_that_leave_their_area_codes_state_keep_their_own() -> None:
    assert us_state("12016310100") == "NY"  # 201 is New Jersey; Fort Lee's 631 exchange is "NY"
    assert us_state("12012220100") == "NJ"
    assert us_state("13055550100") == "FL" and us_state("12065550100") == "WA"


def test_every_number_gets_the_geocoders_own_answer() -> None:
    # Numbers under libphonenumber's NANP prefixes (and beside them): the table's state must be
    # what the geocoder itself says for that very number.
    prefixes = sorted(p for p in GEOCODE_DATA if p.startswith("1"))
    rng = random.Random(13)
    checked = 0
    for prefix in rng.sample(prefixes, 3000):
        digits = prefix + "".join(rng.choice("0123456789") for _ in range(11 - len(prefix)))
        parsed = phonenumbers.parse("+" + digits, None)
        if not phonenumbers.is_valid_number(parsed):
            continue
        expected = state_of_description(geocoder.description_for_number(parsed, "en"))
        region, state = number_place(parsed)
        assert state == (expected if region == "US" else None), digits
        checked += region == "US"
    assert checked > 2000
