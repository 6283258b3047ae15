"""The US state a NANP number rings in, from libphonenumber's geocoding data without loading it.

libphonenumber's geocoder describes a number by the longest prefix of its digits found in its
data ("1305" -> "Florida", "1201631" -> "Fort Lee, NY": exchanges do not always follow their area
code's state), and importing that data costs every process ~100 MiB. The NANP part of it, reduced
to USPS codes, is `data/us_states_by_prefix.txt`: ~1,400 prefixes, each kept only where its state
differs from what a shorter prefix already gives, so the longest-prefix answer is the geocoder's
for every number. `tests/test_us_states.py` derives the table again from the installed library
and fails when they differ; `python -m contracts.us_states` writes it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

TABLE_FILE = Path(__file__).parent / "data" / "us_states_by_prefix.txt"

# The geocoder's English descriptions of US numbers are "City, ST" or a state's name.
STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA",
    "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT",
    "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM",
    "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "Washington State": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington D.C.": "DC", "District of Columbia": "DC",
}  # fmt: skip
_STATES = frozenset(STATE_NAMES.values())
NO_STATE = "-"  # in the file: a prefix whose description names no state


def state_of_description(where: str) -> str | None:
    """USPS code of a geocoder description ("Hialeah, FL" -> FL, "Florida" -> FL), else None."""
    if ", " in where:
        state = where.rsplit(", ", 1)[1]
        return state if state in _STATES else None
    return STATE_NAMES.get(where)


def derive(geocode_data: Mapping[str, Mapping[str, str]]) -> dict[str, str | None]:
    """The table from libphonenumber's `GEOCODE_DATA` (prefix -> {language: description}): each
    NANP prefix with an English description whose state differs from the answer of its longest
    shorter prefix in the table (None when there is none: the geocoder then names the country)."""
    answers = {
        prefix: state_of_description(names["en"])
        for prefix, names in geocode_data.items()
        if prefix.startswith("1") and "en" in names  # country code 1 is the only one starting "1"
    }
    kept: dict[str, str | None] = {}
    for prefix in sorted(answers, key=lambda p: (len(p), p)):
        if answers[prefix] != _longest(kept, prefix[:-1]):
            kept[prefix] = answers[prefix]
    return kept


def _longest(table: Mapping[str, str | None], digits: str) -> str | None:
    for length in range(len(digits), 0, -1):
        if digits[:length] in table:
            return table[digits[:length]]
    return None


@functools.cache
def table() -> dict[str, str | None]:
    """The shipped table, read once per process."""
    found: dict[str, str | None] = {}
    for line in TABLE_FILE.read_text(encoding="ascii").splitlines():
        if line and not line.startswith("#"):
            prefix, state = line.split()
            found[prefix] = None if state == NO_STATE else state
    return found


def us_state(digits: str) -> str | None:
    """USPS state of a valid geographical US number given as its digits with the country code
    ("13055550100"), as libphonenumber's geocoder would say it; None when it names none."""
    return _longest(table(), digits)


def us_states(digits: str) -> tuple[str, ...]:
    """Every state the number may ring in: its area code's and, where the geocoder places its
    exchange in another state, that one too (201-631 is a New Jersey area code the geocoder
    places in New York: both states' hours then bind a call), area code first."""
    found = table()
    states: list[str] = []
    for length in _prefix_lengths():  # 4 to 7 digits: a 100,000-row file asks for every row
        state = found.get(digits[:length])
        if state is not None and state not in states:
            states.append(state)
    return tuple(states)


@functools.cache
def _prefix_lengths() -> tuple[int, ...]:
    return tuple(sorted({len(prefix) for prefix in table()}))


def main() -> None:
    import phonenumbers
    from phonenumbers.geodata import GEOCODE_DATA

    lines = [
        "# NANP prefix -> USPS state (- none), derived by contracts.us_states from libphonenumber",
        f"# {phonenumbers.__version__} geocoding data; a prefix is listed only where it changes the answer",
    ]
    lines += [f"{p} {s or NO_STATE}" for p, s in sorted(derive(GEOCODE_DATA).items())]
    TABLE_FILE.write_text("\n".join(lines) + "\n", encoding="ascii")


if __name__ == "__main__":
    main()
