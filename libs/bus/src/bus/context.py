"""The correlation id of the work in hand, carried across HTTP, Kafka and logs."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

import structlog

CORRELATION_HEADER = "X-Correlation-ID"
_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    return _correlation_id.get()


def bind_correlation_id(correlation_id: str | None) -> str:
    """Make `correlation_id` (or a fresh one) current for this task and its logs."""
    value = correlation_id or new_correlation_id()
    _correlation_id.set(value)
    structlog.contextvars.bind_contextvars(correlation_id=value)
    return value
