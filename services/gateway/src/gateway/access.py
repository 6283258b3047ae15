"""Who may do what, without I/O: the API key format and where a request presents it, scopes, and the
one table of the scope each route needs (`ROUTE_SCOPES`). `gateway.auth` admits requests with it.

A stored key is `sb_live_<key_id>_<secret>`: `key_id` (16 hex digits) is public, shown in listings
and usable in logs; `secret` is 32 random bytes (urlsafe base64, 43 characters). The database keeps
only SHA-256 of the whole key: with 256 bits of randomness a fast hash is enough (no dictionary to
attack, unlike a password), and it keeps the per-request check to one primary-key read.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from starlette.routing import compile_path

KEY_PREFIX: Final = "sb_live_"
_KEY = re.compile(r"sb_live_(?P<key_id>[0-9a-f]{16})_[A-Za-z0-9_-]{43}")


class Scope(StrEnum):
    """`read`: GET only. `operator`: everything but administration. `admin`: everything, including
    re-pointing the post-call webhook and managing API keys."""

    READ = "read"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK: Final = {Scope.READ: 0, Scope.OPERATOR: 1, Scope.ADMIN: 2}


def allows(granted: Scope, needed: Scope) -> bool:
    """Scopes nest: admin includes operator, operator includes read."""
    return _RANK[granted] >= _RANK[needed]


@dataclass(frozen=True)
class NewKey:
    key_id: str
    api_key: str  # shown once, to whoever created it; never stored
    secret_hash: str


@dataclass(frozen=True)
class Principal:
    """Whom a request authenticated as: a stored key (`key_id`), or one of SWITCHBOARD_API_KEYS
    (`key_id` None: admin, for back-compatibility and `make up`'s generated key)."""

    key_id: str | None
    scope: Scope
    bucket: str  # its rate-limit bucket: the key id, or env:<digest of the key>
    rate_per_s: float  # 0: unlimited
    burst: int


def generate_key() -> NewKey:
    key_id = secrets.token_hex(8)
    api_key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewKey(key_id=key_id, api_key=api_key, secret_hash=hash_key(api_key))


def presented_api_key(headers: Mapping[str, str]) -> str:
    """The API key a request presents: `Authorization: Bearer <key>`, else `X-API-Key`, else ""."""
    auth = headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")


def key_id_of(presented: str) -> str | None:
    """The key id of a string shaped like a stored key, else None (no database read needed)."""
    match = _KEY.fullmatch(presented)
    return match["key_id"] if match else None


def hash_key(api_key: str) -> str:
    """Hex SHA-256 of the whole key, as stored in `gateway.api_keys.secret_hash`."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def env_key_bucket(api_key: str) -> str:
    """Rate-limit bucket of a key from SWITCHBOARD_API_KEYS: named by a digest, never the key."""
    return "env:" + hash_key(api_key)[:16]


READ, OPERATOR, ADMIN = Scope.READ, Scope.OPERATOR, Scope.ADMIN

# The scope every /api/v1 route needs: the one place that says it. A route missing here needs admin
# (fail closed); tests/unit/test_access.py fails for any route of the app not listed.
ROUTE_SCOPES: Final[dict[str, Scope]] = {
    # tools
    "POST /api/v1/tools/ecommerce": OPERATOR,
    "POST /api/v1/tools/webhook": OPERATOR,
    "POST /api/v1/tools/callback": OPERATOR,
    "POST /api/v1/tools/opt-out": OPERATOR,
    "GET /api/v1/tools": READ,
    "GET /api/v1/tools/{tool_id}": READ,
    "DELETE /api/v1/tools/{tool_id}": OPERATOR,
    "POST /api/v1/tools/{tool_id}/rotate-token": OPERATOR,  # as creating the tool
    # knowledge base
    "POST /api/v1/knowledge-base/text": OPERATOR,
    "POST /api/v1/knowledge-base/url": OPERATOR,
    "POST /api/v1/knowledge-base/file": OPERATOR,
    "POST /api/v1/knowledge-base/ingest": OPERATOR,
    "GET /api/v1/knowledge-base": READ,
    "GET /api/v1/knowledge-base/{document_id}": READ,
    "DELETE /api/v1/knowledge-base/{document_id}": OPERATOR,
    # agents
    "POST /api/v1/agents": OPERATOR,
    "GET /api/v1/agents": READ,
    "GET /api/v1/agents/{agent_id}": READ,
    "PATCH /api/v1/agents/{agent_id}": OPERATOR,
    "PATCH /api/v1/agents/{agent_id}/prompt": OPERATOR,
    "DELETE /api/v1/agents/{agent_id}": OPERATOR,
    # customer sessions and e-mail templates
    "POST /api/v1/email-templates/sessions": OPERATOR,
    "GET /api/v1/email-templates/sessions": READ,
    "GET /api/v1/email-templates/sessions/{conversation_id}": READ,
    "DELETE /api/v1/email-templates/sessions/{conversation_id}": OPERATOR,
    "POST /api/v1/email-templates": OPERATOR,
    "GET /api/v1/email-templates": READ,
    "GET /api/v1/email-templates/{template_id}": READ,
    "DELETE /api/v1/email-templates/{template_id}": OPERATOR,
    "GET /api/v1/emails": READ,
    # phone numbers and calls
    "POST /api/v1/phone-numbers": OPERATOR,
    "POST /api/v1/phone-numbers/sip-trunk": OPERATOR,
    "GET /api/v1/phone-numbers": READ,
    "GET /api/v1/phone-numbers/{phone_number_id}": READ,
    "PATCH /api/v1/phone-numbers/{phone_number_id}": OPERATOR,
    "DELETE /api/v1/phone-numbers/{phone_number_id}": OPERATOR,
    "POST /api/v1/phone-numbers/twilio/outbound-call": OPERATOR,
    "POST /api/v1/sip-trunk/outbound-call": OPERATOR,
    "GET /api/v1/calls": READ,
    "GET /api/v1/calls/{conversation_id}": READ,
    # campaigns
    "POST /api/v1/batch-calling/submit": OPERATOR,
    "POST /api/v1/batch-calling/validate": OPERATOR,  # no effect, but part of submitting (and a big upload)
    "GET /api/v1/batch-calling": READ,
    "GET /api/v1/batch-calling/{job_id}": READ,
    "GET /api/v1/batch-calling/{job_id}/calls": READ,
    "GET /api/v1/batch-calling/{job_id}/calls.csv": READ,
    "GET /api/v1/batch-calling/events": READ,
    "GET /api/v1/batch-calling/{job_id}/events": READ,
    "POST /api/v1/batch-calling/{job_id}/cancel": OPERATOR,
    "POST /api/v1/batch-calling/{job_id}/pause": OPERATOR,
    "POST /api/v1/batch-calling/{job_id}/resume": OPERATOR,
    "POST /api/v1/do-not-call": OPERATOR,
    "GET /api/v1/do-not-call": READ,
    "DELETE /api/v1/do-not-call/{phone_number}": OPERATOR,
    # pending writes
    "GET /api/v1/operations/{operation_id}": READ,
    # administration: who gets in, and where data leaves us (the post-call webhook decides where
    # ElevenLabs sends transcripts; routes that point deliveries elsewhere belong here too)
    "POST /api/v1/admin/webhooks/post-call": ADMIN,
    "POST /api/v1/api-keys": ADMIN,
    "GET /api/v1/api-keys": ADMIN,
    "GET /api/v1/api-keys/{key_id}": ADMIN,
    "DELETE /api/v1/api-keys/{key_id}": ADMIN,
    # webhooks to the customer's systems: reading them is reading call data; pointing, re-enabling
    # or re-sending them decides where that data goes
    "GET /api/v1/webhooks": READ,
    "GET /api/v1/webhooks/{webhook_id}": READ,
    "GET /api/v1/webhooks/{webhook_id}/deliveries": READ,
    "POST /api/v1/webhooks": ADMIN,
    "DELETE /api/v1/webhooks/{webhook_id}": ADMIN,
    "POST /api/v1/webhooks/{webhook_id}/enable": ADMIN,
    "POST /api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/resend": ADMIN,
}


def _templates() -> list[tuple[str, re.Pattern[str], Scope]]:
    out = []
    for route, scope in ROUTE_SCOPES.items():
        if "{" in route:
            method, path = route.split(" ", 1)
            out.append((method, compile_path(path)[0], scope))
    return out


_EXACT: Final = {route: scope for route, scope in ROUTE_SCOPES.items() if "{" not in route}
_TEMPLATES: Final = _templates()


def required_scope(method: str, path: str) -> Scope:
    """The scope a request needs, from `ROUTE_SCOPES`: literal paths first (as `/batch-calling/submit`
    before `/batch-calling/{job_id}`), HEAD as GET, a trailing slash ignored; admin when unlisted."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    path = path.rstrip("/") or "/"
    if (scope := _EXACT.get(f"{method} {path}")) is not None:
        return scope
    for route_method, pattern, scope in _TEMPLATES:
        if route_method == method and pattern.match(path):
            return scope
    return ADMIN
