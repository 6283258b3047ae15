"""Cursor pagination in the upstream "style A" shape (``page_size`` + ``cursor`` →
``next_cursor`` + ``has_more``).

The cursor encodes the sort key of the last item returned rather than an offset, so deleting or
creating items between two page requests neither skips nor repeats the items that remain.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from fastapi import HTTPException

from elevenlabs_sim.state import Record

T = TypeVar("T")
SortKey = tuple[str | int, int]


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    has_more: bool


def _encode(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode(cursor: str) -> SortKey:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        primary, seq = raw
        if not isinstance(primary, str | int) or not isinstance(seq, int):
            raise TypeError(raw)
        return (primary, seq)
    except (ValueError, TypeError) as exc:
        raise HTTPException(
            status_code=400,
            detail={"status": "invalid_cursor", "message": "The provided cursor is invalid"},
        ) from exc


def paginate(
    records: Sequence[Record],
    *,
    page_size: int,
    cursor: str | None,
    key: Callable[[Record], str | int] | None = None,
    descending: bool = True,
) -> Page[Record]:
    """Sort by ``key`` (default: creation time) with ``seq`` as tie-breaker, then cut a page."""

    def full_key(r: Record) -> SortKey:
        return (key(r) if key else r.created_at, r.seq)

    ordered = sorted(records, key=full_key, reverse=descending)
    if cursor:
        after = _decode(cursor)
        if descending:
            ordered = [r for r in ordered if _lt(full_key(r), after)]
        else:
            ordered = [r for r in ordered if _lt(after, full_key(r))]
    page = ordered[:page_size]
    has_more = len(ordered) > page_size
    next_cursor = _encode(full_key(page[-1])) if has_more and page else None
    return Page(items=page, next_cursor=next_cursor, has_more=has_more)


def _lt(a: SortKey, b: SortKey) -> bool:
    # A cursor from a different sort order may compare str with int; treat that as a bad cursor.
    try:
        return a < b
    except TypeError as exc:
        raise HTTPException(
            status_code=400,
            detail={"status": "invalid_cursor", "message": "The provided cursor is invalid"},
        ) from exc
