from __future__ import annotations

import random

import phonenumbers
import pytest

from devinfra.numbers import SIM_REFUSAL_SUFFIX, outcome_number, outcome_numbers


def test_a_number_never_ends_in_the_simulators_refusal_suffix() -> None:
    # The generator this replaces ("+1415" + 6 random digits + the outcome digit) ended in "0000"
    # once in 1,000 draws with outcome digit 0: 20,000 draws all but surely held one.
    drawn = [outcome_number(0, rng=random.Random(seed)) for seed in range(20_000)]
    assert not [n for n in drawn if n.endswith(SIM_REFUSAL_SUFFIX)]
    assert all(n.endswith("0") for n in drawn)


def test_numbers_are_valid_e164_of_the_prefix_and_never_repeat() -> None:
    drawn = outcome_numbers(list(range(10)) * 200) + [outcome_number(3, prefix="+1212") for _ in range(500)]
    assert len(set(drawn)) == len(drawn)
    for number in drawn[:300] + drawn[-100:]:
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed), number
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number
    assert all(n.startswith("+1212") for n in drawn[-500:])
    assert [n[-1] for n in drawn[:10]] == [str(d) for d in range(10)]


@pytest.mark.parametrize("digit", ["", "12", "x", -1, 10])
def test_the_outcome_digit_is_one_digit(digit: object) -> None:
    with pytest.raises(ValueError, match="one digit"):
        outcome_number(digit)  # type: ignore[arg-type]
