"""A campaign's JSON recipients are read one by one; a value that is no JSON number is a problem
named by index and field, not a variable silently sent as null."""

from __future__ import annotations

import math

import pytest

from gateway.intake import json_entries


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_non_finite_dynamic_variable_is_a_problem_of_its_recipient(value: float) -> None:
    entries = list(
        json_entries(
            [
                {"phone_number": "+14155552671", "dynamic_variables": {"total": 1.5}},
                {"phone_number": "+14155552672", "dynamic_variables": {"total": value}},
            ]
        )
    )
    assert entries[0].problems == []
    assert [(p["index"], p["field"]) for p in entries[1].problems] == [(1, "dynamic_variables.total")]
    assert entries[1].problems[0]["error"] == "must be a finite number (NaN and infinity are not JSON)"
