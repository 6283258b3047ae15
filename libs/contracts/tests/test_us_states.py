"""The shipped NANP prefix -> state table answers what libphonenumber's geocoder answers."""

from __future__ import annotations

import random

import phonenumbers
from phonenumbers import geocoder
from phonenumbers.geodata import GEOCODE_DATA

from contracts.calling import number_place
from contracts.us_states import derive, state_of_description, table, us_state, us_states


def test_the_shipped_table_is_the_one_the_installed_libphonenumber_gives() -> None:
    # Fails after a libphonenumber upgrade that moved a prefix: run `python -m contracts.us_states`.
    assert table() == derive(GEOCODE_DATA)


def test_an_exchange_the_geocoder_places_in_another_state_keeps_both() -> None:
    assert us_state("12016310100") == "NY"  # 201 is New Jersey; its 631 exchange: "New York, NY"
    assert us_states("12016310100") == ("NJ", "NY")
    assert us_states("12012220100") == ("NJ",) and us_state("12012220100") == "NJ"
    assert us_states("13055550100") == ("FL",) and us_states("12065550100") == ("WA",)


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
        region, states = number_place(parsed)
        assert region != "US" or expected is None or expected in states, digits  # the geocoder's, always
        assert region == "US" or states == (), digits
        checked += region == "US"
    assert checked > 2000
