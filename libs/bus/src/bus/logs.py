"""Structured JSON logs with the correlation id and service name on every line; the one home of
what never reaches a log line, an event or a dead letter's headers in clear:

- secret query parameters (`sig`, `token`, WooCommerce keys…) in any URL of any line;
- every query value of a URL the HTTP client logs (httpx's "HTTP Request: GET <url>" at INFO): those
  URLs are built from what callers said (a store searched by the caller's e-mail);
- the values inside database and validation errors (`describe_error`, `error_trace`): SQLAlchemy
  engines hide statement parameters (`bus.db`), but the driver's own messages still quote them
  (asyncpg: "invalid input for query argument $1: 'jane@example.com'", a unique violation's
  "Key (email)=(jane@example.com)"), and pydantic's name the input value.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

# Query parameters that carry a credential or a signature (signed upload URLs' `sig`, WooCommerce's
# `consumer_key`/`consumer_secret` fallback, API keys). The proxy's access log redacts the same set
# (deploy/caddy/Caddyfile).
SECRET_QUERY_PARAMS = (
    "sig",
    "signature",
    "token",
    "access_token",
    "consumer_key",
    "consumer_secret",
    "api_key",
    "apikey",
    "key",
    "xi-api-key",
    "xi_api_key",
    "secret",
    "password",
)
_SECRET_QUERY = re.compile(
    r"(?P<name>[?&;](?:" + "|".join(re.escape(p) for p in SECRET_QUERY_PARAMS) + r")=)[^&;#\s\"']*",
    re.IGNORECASE,
)
REDACTED = "REDACTED"
# A stored API key (the gateway's `sb_live_<key_id>_<secret>`, gateway.access) wherever it appears: its
# key id stays readable, its secret never reaches a log.
_STORED_API_KEY = re.compile(r"(sb_live_[0-9a-f]{16}_)[A-Za-z0-9_-]{43}")


# Any query parameter's value (a name, then `=`, up to the next separator, quote or space).
_ANY_QUERY = re.compile(r"(?P<name>[?&;][^=&;#\s\"'?]*=)[^&;#\s\"']*")
#: Loggers of HTTP clients: every query value of the URLs they log is redacted, not only secrets.
CLIENT_LOGGERS = ("httpx", "httpcore")


def redact_query(text: str) -> str:
    """`text` with the value of every secret query parameter (in any URL in it) and the secret of
    every stored API key replaced."""
    if "sb_live_" in text:
        text = _STORED_API_KEY.sub(rf"\g<1>{REDACTED}", text)
    return _SECRET_QUERY.sub(rf"\g<name>{REDACTED}", text) if "=" in text else text


def redact_query_values(text: str) -> str:
    """`text` with the value of every query parameter (in any URL in it) replaced; names stay."""
    return _ANY_QUERY.sub(rf"\g<name>{REDACTED}", text) if "=" in text else text


class RedactQueryFilter(logging.Filter):
    """Rewrites stdlib records (uvicorn.access request lines, httpx request URLs) so a secret query
    parameter, or any query value in an HTTP client's line, never reaches the log; the record's
    message is formatted once, here."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        client = record.name.split(".", 1)[0] in CLIENT_LOGGERS
        redacted = redact_query_values(message) if client else redact_query(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_CLIENT_FILTER = RedactQueryFilter()


class RebalancedCommitFilter(logging.Filter):
    """FastStream logs a failed offset commit at CRITICAL with its traceback. After a pause or a
    rebalance that failure is expected (aiokafka's `CommitFailedError`: the partition has another
    owner, which is given the message again and deduplicates it), so it becomes one WARNING line
    an operator can read, not a page."""

    MESSAGE = (
        "bus.offset_commit.rebalanced: the partition moved to another consumer (a pause or a "
        "rebalance); its new owner gets the message again and deduplicates it"
    )

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and type(error).__name__ == "CommitFailedError":
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args, record.exc_info, record.exc_text = self.MESSAGE, None, None, None
        return True


def redact_http_client_logs() -> None:
    """Redact on the HTTP client loggers themselves (idempotent), so their records carry no query
    value whatever handler gets them (a test's capture, a library's own handler)."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if _CLIENT_FILTER not in logger.filters:
            logger.addFilter(_CLIENT_FILTER)


# ---- errors without the values they carry ---------------------------------------------------

# A quoted value or a constraint's key: 'jane@example.com', "uq_x", Key (email)=(jane@example.com).
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|\([^()]*\)=\([^()]*\)")
_DATABASE_MODULES = ("asyncpg", "psycopg", "sqlalchemy")
_MAX_STATEMENT_CHARS = 500


def _masked(message: str) -> str:
    return _QUOTED.sub("?", message.split("\n", 1)[0])


def describe_error(exc: BaseException) -> str:
    """One line saying what failed, without the values involved: for log lines and dead-letter
    headers (`x-error`). Database errors keep their class, SQLSTATE, constraint/table/column and the
    statement (parameters are bound, so it holds none) with every quoted value masked; validation
    errors keep each field's location and error type; any other error is its `repr`."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        return f"ValidationError({exc.title}: {problems})"
    if isinstance(exc, StatementError):
        orig = exc.orig if exc.orig is not None else exc
        cause = orig.__cause__ or orig
        facts = [
            f"{name}={value}"
            for name in ("sqlstate", "constraint_name", "table_name", "column_name")
            if isinstance(value := getattr(cause, name, None), str)
        ]
        statement = (exc.statement or "")[:_MAX_STATEMENT_CHARS]
        return (
            f"{type(exc).__name__}({type(orig).__name__}: {_masked(str(orig))}"
            + (f"; {', '.join(facts)}" if facts else "")
            + f"; SQL: {statement})"
        )
    if type(exc).__module__.split(".", 1)[0] in _DATABASE_MODULES:
        return f"{type(exc).__name__}({_masked(str(exc))})"
    return repr(exc)


def error_trace(exc: BaseException) -> str:
    """The traceback of `exc` and the exceptions it chains, each described by `describe_error`
    (a plain traceback prints every message, the driver's quoted values included)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts: list[str] = []
    for index, error in enumerate(reversed(chain)):
        if index:
            parts.append("\nThe above exception led to the following one:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(error.__traceback__))
        parts.append(f"{type(error).__module__}.{type(error).__qualname__}: {describe_error(error)}\n")
    return "".join(parts)


def _format_exc_info(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog's `format_exc_info` with `error_trace`: an exception logged with its traceback
    (`log.exception`, stdlib `exc_info`) carries no value its messages quote."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and isinstance(exc_info[1], BaseException):
        event_dict["exception"] = error_trace(exc_info[1])
    return event_dict


def _redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name, value in event_dict.items():
        if isinstance(value, str):
            event_dict[name] = redact_query(value)
    return event_dict


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_event,
        _format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Route stdlib logging (uvicorn, aiokafka, faststream) through the same JSON renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    handler.addFilter(RedactQueryFilter())
    handler.addFilter(RebalancedCommitFilter())
    redact_http_client_logs()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)
    for noisy in ("aiokafka", "aiokafka.consumer.group_coordinator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
