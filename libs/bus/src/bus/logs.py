"""Structured JSON logs with the correlation id and service name on every line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

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


def redact_query(text: str) -> str:
    """`text` with the value of every secret query parameter (in any URL in it) and the secret of
    every stored API key replaced."""
    if "sb_live_" in text:
        text = _STORED_API_KEY.sub(rf"\g<1>{REDACTED}", text)
    return _SECRET_QUERY.sub(rf"\g<name>{REDACTED}", text) if "=" in text else text


class RedactQueryFilter(logging.Filter):
    """Rewrites stdlib records (uvicorn.access request lines, httpx request URLs) so a secret query
    parameter never reaches the log; the record's message is formatted once, here."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_query(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)
    for noisy in ("aiokafka", "aiokafka.consumer.group_coordinator"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
