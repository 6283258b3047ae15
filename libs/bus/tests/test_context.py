"""Correlation ids from outside (HTTP headers, Kafka headers, message fields) are checked before use."""

from __future__ import annotations

import pytest

from bus.context import bind_correlation_id, current_correlation_id, usable_correlation_id


@pytest.mark.parametrize(
    "value",
    ["corr-e2e-1", "0af7651916cd43dd8448eb211c80319c", "01J9Z3K7QF:req.42", "a" * 128, "7"],
)
def test_usual_ids_are_kept(value: str) -> None:
    assert usable_correlation_id(value) == value
    assert bind_correlation_id(value) == value == current_correlation_id()


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "a" * 129,
        "has space",
        "new\nline",
        "tab\t",
        "<b>",
        "ünï",
        "-dash-first",
        ".dot",
        "x;y",
        "a/b",
    ],
)
def test_anything_else_is_replaced_by_a_fresh_id(value: str | None) -> None:
    assert usable_correlation_id(value) is None
    bound = bind_correlation_id(value)
    assert bound != value and len(bound) == 32 and current_correlation_id() == bound
