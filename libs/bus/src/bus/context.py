"""The correlation id of the work in hand, carried across HTTP, Kafka and logs."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

import structlog

CORRELATION_HEADER = "X-Correlation-ID"
_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
#: What a caller's id may look like: UUIDs, ULIDs, trace ids and the like. It travels into every log
#: line, Kafka header and event of the work, so anything longer or stranger is replaced, not kept.
MAX_CORRELATION_ID_CHARS = 128
_USABLE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_CORRELATION_ID_CHARS - 1}}}")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def usable_correlation_id(correlation_id: str | None) -> str | None:
    """``correlation_id`` if it is 1-128 characters of letters, digits and ``._:-`` (starting with
    a letter or digit), else None: a header or message field from outside is never trusted as is."""
    if correlation_id and _USABLE.fullmatch(correlation_id):
        return correlation_id
    return None


def bind_correlation_id(correlation_id: str | None) -> str:
    """Make `correlation_id` (or a fresh one, when it is missing or unusable) current for this
    task and its logs; returns the id bound."""
    value = usable_correlation_id(correlation_id) or new_correlation_id()
    _correlation_id.set(value)
    structlog.contextvars.bind_contextvars(correlation_id=value)
    return value
