"""A JSON submission read from its spooled file: members kept, recipients counted, then parsed one at
a time."""

from __future__ import annotations

import io
import json
import tempfile

import pytest

from gateway.jsonbody import MAX_DEPTH, BodyError, SplitBody


def split(body: bytes) -> SplitBody:
    return SplitBody(io.BytesIO(body))


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
    read = split(body)
    assert (read.fields, read.count, list(read.recipients())) == (fields, count, items)


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
        split(body)


def test_a_body_that_is_no_object_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a JSON object"):
        split(b"[]")


def test_the_same_values_as_json_loads() -> None:
    document = {
        "call_name": "x",
        "recipients": [
            {"phone_number": f"+1415555{i:04d}", "dynamic_variables": {"v": i / 3, "ok": True}}
            for i in range(50)
        ],
        "retry_count": 2,
    }
    read = split(json.dumps(document, indent=2).encode())
    assert read.fields == {"call_name": "x", "retry_count": 2} and read.count == 50
    assert list(read.recipients()) == document["recipients"]


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
    assert split(json.dumps(document).encode()).may_hold_nul is may_hold_nul


def test_the_nul_escape_is_seen_across_the_reads_of_the_parser() -> None:
    # ijson reads 64 KiB at a time: put the escape across each block boundary in turn.
    for cut in range(1, 6):
        head = b'{"recipients": [{"name": "' + b"x" * (65536 - 26 - cut)
        body = head + b'\\u0000"}]}'
        assert body[65536 - cut : 65536 - cut + 6] == b"\\u0000"
        assert split(body).may_hold_nul, cut


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"recipients": [1], "recipients": [2]}', "given twice"),
        (b'{"call_name": "a", "call_name": "b", "recipients": [1]}', "given twice"),
        # ijson names paths with dots: this member would otherwise be read as a recipient.
        (b'{"recipients.item": {"phone_number": "+14155550100"}, "recipients": [1]}', "unknown member"),
        (b'{"recipients": [1]} {"recipients": [2]}', "trailing garbage"),
        (b'{"a": NaN, "recipients": [1]}', "invalid char"),
        (b'{"recipients": [{"name": "\xff"}]}', "invalid bytes in UTF8"),
        (b"", "premature EOF"),
    ],
)
def test_what_is_refused_says_why_in_one_line(body: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        split(body)
    assert "\n" not in str(raised.value)


def test_a_body_larger_than_the_spool_is_read_from_disk() -> None:
    recipients = [{"phone_number": f"+1415555{i:04d}", "name": "Zoë 😀"} for i in range(20_000)]
    with tempfile.SpooledTemporaryFile(max_size=1024) as file:
        file.write(json.dumps({"recipients": recipients, "call_name": "late"}).encode())
        assert file._rolled  # type: ignore[attr-defined]
        file.seek(0)
        read = SplitBody(file)  # type: ignore[arg-type]
        assert (read.fields, read.count) == ({"call_name": "late"}, 20_000)
        assert list(read.recipients()) == recipients
        assert list(read.recipients()) == recipients  # a second reading starts over


def test_integers_beyond_64_bits_are_read_exactly() -> None:
    # yajl refuses them ("integer overflow"); the schema must see them to name the field.
    body = b'{"scheduled_time_unix": 99999999999999999999999, "recipients": [{"v": -18446744073709551617}]}'
    read = split(body)
    assert read.fields == {"scheduled_time_unix": 99999999999999999999999}
    assert list(read.recipients()) == [{"v": -18446744073709551617}]


def test_a_float_beyond_range_is_refused() -> None:
    with pytest.raises(ValueError, match="overflow"):
        split(b'{"recipients": [{"v": 1e400}]}')


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b'{"call_name": "x", "max_total_minutes": NaN, "recipients": [1]}', ("max_total_minutes",)),
        (b'{"recipients": [{"phone_number": "+14155550100"}, 2, {"v": Infinity}]}', ("recipients", 2)),
        (b'{"recipients": [1], "calling_window": {"start": 09:00}}', ("calling_window",)),
        (b'{"call_name": "x",, "recipients": [1]}', ()),
    ],
)
def test_a_refusal_names_the_member_being_read(body: bytes, loc: tuple[object, ...]) -> None:
    with pytest.raises(BodyError) as raised:
        split(body)
    assert raised.value.loc == loc


@pytest.mark.parametrize("depth", [MAX_DEPTH, 100_000])
@pytest.mark.parametrize("where", ["recipient", "member"])
def test_nesting_deeper_than_any_submission_is_refused_before_anything_is_built(
    depth: int, where: str
) -> None:
    nested = b"[" * depth + b"]" * depth
    if where == "recipient":
        body, loc = b'{"recipients": [1, {"dynamic_variables": ' + nested + b"}]}", ("recipients", 1)
    else:
        body, loc = b'{"calling_window": ' + nested + b', "recipients": [1]}', ("calling_window",)
    with pytest.raises(BodyError, match=f"nested deeper than {MAX_DEPTH} levels") as raised:
        split(body)
    assert raised.value.loc == loc


def test_nesting_up_to_the_limit_is_read() -> None:
    depth = MAX_DEPTH - 3  # the body's object, the array and the recipient's object are levels too
    nested = b"[" * depth + b"]" * depth
    read = split(b'{"recipients": [{"v": ' + nested + b"}]}")
    assert read.count == 1 and len(list(read.recipients())) == 1


def test_a_utf8_byte_order_mark_is_skipped_as_json_loads_skips_it() -> None:
    body = b'\xef\xbb\xbf{"call_name": "x", "recipients": [{"name": "Zo\xc3\xab"}]}'
    read = split(body)
    assert (read.fields, list(read.recipients())) == ({"call_name": "x"}, [{"name": "Zoë"}])
    assert json.loads(body) == {"call_name": "x", "recipients": [{"name": "Zoë"}]}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_utf16_and_utf32_are_refused_by_name(encoding: str) -> None:
    with pytest.raises(BodyError, match="must be UTF-8 text"):
        split('{"recipients": [1]}'.encode(encoding))


@pytest.mark.parametrize(
    "text",
    [
        b'"\\udc00"',  # an unpaired low surrogate escape
        b'"x\\udfffy"',
        b'"\xc0\xaf"',  # an overlong encoding of "/"
        b'"\xed\xa0\x80"',  # UTF-8 bytes of a surrogate
    ],
)
@pytest.mark.parametrize("big_integer", [False, True], ids=["yajl", "pure-python"])
def test_text_that_is_no_unicode_is_refused_where_it_is(text: bytes, big_integer: bool) -> None:
    # It was a UnicodeDecodeError out of the parser: a 500.
    extra = b', "n": 99999999999999999999999' if big_integer else b""
    with pytest.raises(BodyError, match="not Unicode") as raised:
        split(b'{"call_name": "c"' + extra + b', "recipients": [{"name": ' + text + b"}]}")
    # The pure-Python backend decodes UTF-8 a block ahead of its parser: where is not known.
    raw_bytes = b"\\u" not in text
    assert raised.value.loc == (() if big_integer and raw_bytes else ("recipients", 0))


@pytest.mark.parametrize("big_integer", [False, True], ids=["yajl", "pure-python"])
def test_an_unpaired_high_surrogate_reads_as_a_question_mark_with_either_backend(big_integer: bool) -> None:
    # The pure-Python backend (read for a big integer) kept it, and storing it was a 500.
    extra = b', "n": 99999999999999999999999' if big_integer else b""
    body = (
        b'{"call_name": "a\\ud800b"'
        + extra
        + b', "recipients": [{"dynamic_variables": {"k\\ud800": "\\ud83d\\ude00"}}]}'
    )
    read = split(body)
    assert read.fields["call_name"] == "a?b"
    assert list(read.recipients()) == [{"dynamic_variables": {"k?": "😀"}}]
