"""Where a NUL is in nested JSON-like values, and the same values without it (`contracts.text`)."""

from __future__ import annotations

from contracts.text import REPLACEMENT, nul_path, without_nul


def test_the_path_names_the_first_nul_in_keys_values_and_lists() -> None:
    assert nul_path("a\x00") == ""
    assert nul_path({"recipients": [{"name": "ok"}, {"name": "b\x00"}]}) == "recipients.1.name"
    assert nul_path({"dynamic_variables": {"k\x00": "v"}}) == f"dynamic_variables.k{REPLACEMENT}"
    assert nul_path(("x", ["y", "\x00"])) == "1.1"
    assert nul_path({"n": 1, "b": None, "s": "fine", "l": [1.5, True]}) is None


def test_without_nul_replaces_every_one_and_keeps_clean_values_as_they_are() -> None:
    clean = {"transcript": [{"message": "hello"}]}
    assert without_nul(clean) is clean
    dirty = {"transcript": [{"message": "he\x00llo", "k\x00": ["\x00"]}], "n": 3}
    assert without_nul(dirty) == {
        "transcript": [{"message": f"he{REPLACEMENT}llo", f"k{REPLACEMENT}": [REPLACEMENT]}],
        "n": 3,
    }
    assert nul_path(without_nul(dirty)) is None


def test_the_replacement_may_be_given() -> None:
    assert without_nul({"subject": "a\x00b"}, " ") == {"subject": "a b"}
