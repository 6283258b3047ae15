"""A JSON submission read without building its recipients all at once.

`json.loads` of a 100,000-recipient body builds 100,000 dicts (tens of MB) before the first one is
checked. The standard library's own JSON scanner (the C one `json.loads` uses) parses one value at
a given offset, so the top-level object is walked here value by value: every field but `recipients`
is parsed as usual, the recipients array is only measured, and `recipients()` then yields its items
one at a time from the same text. Same grammar and errors as `json.loads`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

_DECODER = json.JSONDecoder()
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]  # json.loads's C scanner
# The whitespace JSON allows between tokens (json.decoder's own WHITESPACE, not in its stubs).
_WS = re.compile(r"[ \t\n\r]*").match


class SplitBody:
    """`fields`: the top-level members except `recipients`; `count`: how many recipients (None
    when the member is absent, -1 when it is not an array). Raises `ValueError` for bad JSON."""

    def __init__(self, body: str | bytes, member: str = "recipients") -> None:
        self._text = body if isinstance(body, str) else body.decode("utf-8")
        # JSON writes a NUL only as the escape `\u0000` (a raw one is refused by the parser), so
        # without that text no value of the body holds one.
        self.may_hold_nul = "\\u0000" in self._text
        self.fields: dict[str, Any] = {}
        self.count: int | None = None
        self._start: int | None = None  # offset of the array's first item (or of its `]`)
        text = self._text
        i = self._ws(0)
        if text[i : i + 1] != "{":
            raise ValueError("the body must be a JSON object")
        i = self._ws(i + 1)
        if text[i : i + 1] == "}":
            self._end(i + 1)
            return
        while True:
            if text[i : i + 1] != '"':
                raise ValueError(f"expected a member name at offset {i}")
            name, i = self._value(i)
            i = self._ws(i)
            if text[i : i + 1] != ":":
                raise ValueError(f"expected ':' at offset {i}")
            i = self._ws(i + 1)
            if name == member and text[i : i + 1] == "[":
                self._start = self._ws(i + 1)
                self.count = 0
                i = self._start + 1  # past the `]` of an empty array
                for _, after in self._items(self._start):
                    self.count += 1
                    i = after
            else:
                value, i = self._value(i)
                if name == member:
                    self.count = -1
                else:
                    self.fields[name] = value
            i = self._ws(i)
            if text[i : i + 1] == "}":
                self._end(i + 1)
                return
            if text[i : i + 1] != ",":
                raise ValueError(f"expected ',' or '}}' at offset {i}")
            i = self._ws(i + 1)

    def _ws(self, i: int) -> int:
        match = _WS(self._text, i)
        return match.end() if match else i

    def _value(self, i: int) -> tuple[Any, int]:
        try:
            value, end = _SCAN(self._text, i)
        except StopIteration:
            raise ValueError(f"expected a value at offset {i}") from None
        return value, end

    def _end(self, i: int) -> None:
        if self._ws(i) != len(self._text):
            raise ValueError(f"extra data at offset {i}")

    def _items(self, i: int) -> Iterator[tuple[Any, int]]:
        """The array's items from offset `i` (its first item), each with the offset after it."""
        text = self._text
        if text[i : i + 1] == "]":
            return
        while True:
            value, i = self._value(i)
            i = self._ws(i)
            yield value, i + 1  # past the `,` or `]` that follows
            if text[i : i + 1] == "]":
                return
            if text[i : i + 1] != ",":
                raise ValueError(f"expected ',' or ']' at offset {i}")
            i = self._ws(i + 1)

    def recipients(self) -> Iterator[Any]:
        """The recipients, parsed one at a time (the body was checked whole already)."""
        if self._start is not None:
            for value, _ in self._items(self._start):
                yield value
