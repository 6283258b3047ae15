"""A JSON submission read from a file without holding its text or all its recipients at once.

`json.loads` of a 100,000-recipient body builds 100,000 dicts (tens of MB) before the first one is
checked, and the body's text alone is 10 MB (40 MB as a Python str once one emoji is in it). The
body is therefore spooled to a file (`submissions.submission_of`) and read twice with ijson, an
incremental parser over yajl (https://github.com/ICRAR/ijson): a first pass checks the whole
document, keeps every top-level member but `recipients` and counts the recipients; `recipients()`
then yields them one at a time, each built by ijson's C builder.

yajl stops at 64-bit integers: a body holding a larger one is read again with ijson's pure-Python
backend (slower, exact), so a schema can say which field is out of range. Refused where `json.loads`
is lenient: `NaN`/`Infinity` (not JSON), numbers beyond a float's range, and a top-level member
given twice (rather than the last one silently winning), and nesting deeper than `MAX_DEPTH`.
Text that is no Unicode (RFC 8259, section 8.2, leaves its reading open): yajl refuses an unpaired
low surrogate escape and UTF-8 bytes that encode a surrogate, and reads an unpaired high surrogate
escape as "?"; both backends give the same values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import IO, Any

import ijson
from ijson.common import ObjectBuilder

# JSON writes a NUL only as the escape `\u0000` (a raw one is refused by the parser).
_NUL_ESCAPE = b"\\u0000"
_STARTS = frozenset({"start_map", "start_array"})
# Deeper than any submission's shape (analysis rules nest 4 levels): ijson's C builder recurses
# per level, and a 200 KB body of nested arrays took a process down in a probe.
MAX_DEPTH = 32
_ENDS = frozenset({"end_map", "end_array"})


class _NulWatch:
    """The body as ijson reads it, noting whether the text `\\u0000` went by (a block boundary
    may split it: the last bytes of each block are searched again with the next)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._tail = b""
        self.seen = False

    def read(self, size: int = -1) -> bytes:
        block = self._file.read(size)
        if not self.seen and block:
            self.seen = _NUL_ESCAPE in self._tail + block
            self._tail = block[-(len(_NUL_ESCAPE) - 1) :]
        return block


class BodyError(ValueError):
    """A body that is no JSON object; `loc`: the member (and recipient index) being read when
    the parser stopped, () outside any. The message is yajl's first line: the rest draws the body
    around the fault."""

    def __init__(self, message: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


# What yajl's terse messages most often mean, said to the client too.
_HINTS = {
    "invalid char in json text.": " (NaN and Infinity are not JSON; strings take double quotes)",
    "a digit is required after the minus sign.": " (-Infinity is not JSON)",
    "numeric (floating point) overflow": " (beyond the range of a 64-bit float)",
}


def _first_line(exc: Exception) -> str:
    message = exc.args[0] if exc.args else str(exc)
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    lines = str(message).strip().splitlines()
    first = lines[0] if lines else "incomplete JSON"
    return first + next((hint for end, hint in _HINTS.items() if first.endswith(end)), "")


_UTF8_BOM = b"\xef\xbb\xbf"


def _text_start(file: IO[bytes]) -> int:
    """Where the JSON text starts: after a UTF-8 byte-order mark, which RFC 8259 (section 8.1) lets
    a parser ignore and `json.loads` of bytes does. JSON between systems is UTF-8 (same section):
    UTF-16 and UTF-32, told by their NULs in the first four bytes as `json.detect_encoding` does,
    are refused by name rather than as "invalid char"."""
    head = file.read(4)
    start = len(_UTF8_BOM) if head.startswith(_UTF8_BOM) else 0
    file.seek(start)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) >= 2 and b"\x00" in head[:2]):
        raise BodyError("the body must be UTF-8 text (RFC 8259), not UTF-16 or UTF-32")
    return start


# yajl's C decoder fails on an escaped lone low surrogate (`\udc00`) and on bytes that encode a
# surrogate (`\xed\xa0\x80`): no character either way (RFC 8259, section 8.2).
_NOT_UNICODE = (
    "the body holds text that is not Unicode (an unpaired surrogate escape or an invalid UTF-8 sequence)"
)


_LOW_SURROGATE = re.compile("[\udc00-\udfff]")


def _as_yajl_reads(value: Any) -> Any:
    """`value` as yajl gives it: an unpaired high surrogate escape (`\ud800`) becomes "?" (the
    pure-Python backend keeps it, and such text cannot be stored or sent on)."""
    return json.loads(json.dumps(value, ensure_ascii=False).encode("utf-8", "replace"))


class SplitBody:
    """A JSON object read from `file` (bytes, seekable; kept open by the caller).

    `fields`: the top-level members except `member`; `count`: how many items `member` holds (None
    when it is absent, -1 when it is not an array); `may_hold_nul`: False when no value can hold a
    NUL (the body has no `\\u0000`). Raises `BodyError` for a body that is no JSON object."""

    def __init__(self, file: IO[bytes], member: str = "recipients") -> None:
        self._file = file
        self._member = member
        self._offset = _text_start(file)
        self._backend: Any = ijson  # yajl2_c, its fastest backend
        try:
            self._read()
        except UnicodeDecodeError:
            raise BodyError(_NOT_UNICODE, self._loc) from None
        except ijson.JSONError as exc:
            if "integer overflow" not in _first_line(exc):
                raise BodyError(_first_line(exc), self._loc) from None
            self._backend = ijson.get_backend("python")
            file.seek(self._offset)
            try:
                self._read()
            except ijson.JSONError as again:  # its UTF-8 decoder's error comes wrapped
                problem = _NOT_UNICODE if "codec can't decode" in _first_line(again) else _first_line(again)
                raise BodyError(problem, self._loc) from None

    def _read(self) -> None:
        self.fields: dict[str, Any] = {}
        self.count: int | None = None
        self._loc: tuple[str | int, ...] = ()
        watch = _NulWatch(self._file)
        self._first_pass(self._backend.basic_parse(watch, use_float=True))
        self.may_hold_nul = watch.seen

    def _first_pass(self, events: Iterator[tuple[str, Any]]) -> None:
        for event, _ in events:
            if event != "start_map":
                raise BodyError("the body must be a JSON object")
            break
        member, depth, name = self._member, 1, ""
        builder: Any = None  # the member being built, until its value is complete
        exact = self._backend is not ijson  # the pure-Python backend keeps unpaired surrogates
        for event, value in events:
            if exact and isinstance(value, str) and _LOW_SURROGATE.search(value):
                raise BodyError(_NOT_UNICODE, self._loc)  # as yajl refuses it
            if depth == 1 and event == "end_map":
                break
            if depth == 1 and event == "map_key":
                name = value
                if name in self.fields or (name == member and self.count is not None):
                    raise BodyError(f"the member {name!r} is given twice", (name,))
                if name.startswith(member + "."):  # ijson's path syntax: it would read as a recipient
                    raise BodyError(f"unknown member {name!r}", (name,))
                builder = None if name == member else ObjectBuilder()
                self._loc = (name,)
                continue
            if builder is None and depth == 1:  # the start of `member`'s value
                self.count = 0 if event == "start_array" else -1
            elif builder is None and depth == 2 and self.count is not None and self.count >= 0:
                if event not in _ENDS:  # an item starts, or is a scalar
                    self.count += 1
                    self._loc = (member, self.count - 1)
            elif builder is not None:
                builder.event(event, value)
            if event in _STARTS:
                depth += 1
                if depth > MAX_DEPTH:
                    raise BodyError(f"nested deeper than {MAX_DEPTH} levels", self._loc)
            elif event in _ENDS:
                depth -= 1
            if depth == 1:
                if builder is not None:  # the member's value is complete
                    self.fields[name] = (
                        builder.value if self._backend is ijson else _as_yajl_reads(builder.value)
                    )
                builder = None
                self._loc = ()
        for _ in events:  # only yajl's check that nothing follows the object
            pass

    def recipients(self) -> Iterator[Any]:
        """The items of `member`, parsed one at a time (the body was checked whole already)."""
        if not self.count or self.count < 0:
            return
        self._file.seek(self._offset)
        items = self._backend.items(self._file, self._member + ".item", use_float=True)
        yield from items if self._backend is ijson else map(_as_yajl_reads, items)
