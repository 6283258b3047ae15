"""A JSON submission walked member by member: recipients counted, then parsed one at a time."""

from __future__ import annotations

import json

import pytest

from gateway.jsonbody import SplitBody


@pytest.mark.parametrize(
    ("body", "fields", "count", "items"),
    [
        (b"{}", {}, None, []),
        (b'{"a": 1, "recipients": []}', {"a": 1}, 0, []),
        (b' { "recipients" : [ {"x": 1} , 2 , "s" ] , "b" : [1, 2] } ', {"b": [1, 2]}, 3, [{"x": 1}, 2, "s"]),
        (b'{"recipients": {"a": 1}, "c": null}', {"c": None}, -1, []),
        ('{"name": "Zoë", "recipients": [{"n": "Bjørn"}]}'.encode(), {"name": "Zoë"}, 1, [{"n": "Bjørn"}]),
    ],
)
def test_members_and_recipients(
    body: bytes, fields: dict[str, object], count: int | None, items: list[object]
) -> None:
    split = SplitBody(body)
    assert (split.fields, split.count, list(split.recipients())) == (fields, count, items)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,}',
        b'{"recipients":[1,]}',
        b'{"a":1} x',
        b'{"a" 1}',
        b"nope",
        b'{"recipients":[1 2]}',
        b"\xff",
        b"",
    ],
)
def test_what_json_loads_refuses_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"."):
        json.loads(body)
    with pytest.raises(ValueError, match=r"."):
        SplitBody(body)


def test_a_body_that_is_no_object_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        SplitBody(b"[]")


def test_the_same_values_as_json_loads() -> None:
    document = {
        "call_name": "x",
        "recipients": [
            {"phone_number": f"+1415555{i:04d}", "dynamic_variables": {"v": i / 3, "ok": True}}
            for i in range(50)
        ],
        "retry_count": 2,
    }
    split = SplitBody(json.dumps(document, indent=2).encode())
    assert split.fields == {"call_name": "x", "retry_count": 2} and split.count == 50
    assert list(split.recipients()) == document["recipients"]


@pytest.mark.parametrize(
    ("document", "may_hold_nul"),
    [
        ({"recipients": [{"name": "Zoë", "dynamic_variables": {"k": "v"}}]}, False),
        ({"recipients": [{"name": "a\x00b"}]}, True),  # json.dumps writes it as \u0000
        ({"recipients": [{"dynamic_variables": {"k\x00": 1}}]}, True),
        ({"note": "\\u0000 is how JSON writes NUL"}, True),  # an escaped backslash: checked anyway
    ],
)
def test_a_body_without_the_nul_escape_is_known_to_hold_no_nul(document: object, may_hold_nul: bool) -> None:
    assert SplitBody(json.dumps(document).encode()).may_hold_nul is may_hold_nul
