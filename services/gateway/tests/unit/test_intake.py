"""A campaign's JSON recipients are read one by one; a value that is no JSON number is a problem
named by index and field, not a variable silently sent as null."""

from __future__ import annotations

import math

import pytest

from contracts.calling import read_number
from gateway.intake import AgentNeeds, Intake, json_entries


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


def _duplicate_ids(ids: list[str | None]) -> list[tuple[int, str]]:
    """(index, id) of each recipient `Intake.check` refuses as a duplicate id, JSON recipients
    with the given ids (None: none given, so `r<index>` is assigned)."""
    intake = Intake(
        needs=AgentNeeds(set(), {}),
        default_region=None,
        campaign_zone=None,
        chunk_size=10,
        budget=10**6,
        max_listed=100,
    )
    items = [
        {"phone_number": f"+1415555{i:04d}"} | ({} if given is None else {"id": given})
        for i, given in enumerate(ids)
    ]
    for entry in json_entries(items):
        intake.check(entry, read_number(entry.phone or ""))
    return [(p["index"], p["id"]) for p in intake.problems if "duplicate recipient id" in p["error"]]


@pytest.mark.parametrize(
    ("ids", "duplicates"),
    [
        (["a", "b", "a"], [(2, "a")]),
        ([None, None, "r1"], [(2, "r1")]),  # a given id that an earlier recipient was assigned
        (["r2", None, None], [(2, "r2")]),  # an assigned id that an earlier recipient was given
        ([None, "r0", "r0"], [(1, "r0"), (2, "r0")]),
        ([None, "r01", "r 0", "row0", "R0"], []),  # not the shape of an assigned id
        (["x", "r1", None], []),  # r1 was given, not assigned: index 1 has its own id
        ([None] * 5, []),
    ],
)
def test_duplicate_ids_given_or_assigned(ids: list[str | None], duplicates: list[tuple[int, str]]) -> None:
    assert _duplicate_ids(ids) == duplicates
