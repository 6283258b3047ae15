"""Rules of the tool-webhooks service: signatures, payload mapping, secrets (pure, no I/O)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from bus.secrets import fernet_for
from contracts.webhooks import PostCallWebhookReceived

JSON = dict[str, Any]

SIGNATURE_HEADER = "ElevenLabs-Signature"
WEBHOOK_NAME = "switchboard-post-call"
WEBHOOK_EVENTS = ("transcript", "call_initiation_failure")
POST_CALL_ROUTE = "webhook/elevenlabs/post-call"

PublishedType = Literal["post_call_transcription", "call_initiation_failure"]
PUBLISHED_TYPES: frozenset[str] = frozenset({"post_call_transcription", "call_initiation_failure"})


class InvalidSignature(Exception):
    """The `ElevenLabs-Signature` header is missing, malformed, stale, or does not match."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedPayload(Exception):
    """A correctly signed body that is not a post-call webhook we can read."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CommandError(Exception):
    """A command cannot be carried out; becomes `CommandFailed(status_code, error, detail)`."""

    def __init__(self, status_code: int, error: str, detail: str | None = None) -> None:
        super().__init__(f"{status_code} {error}: {detail}")
        self.status_code = status_code
        self.error = error
        self.detail = detail


# ---- signature ----------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int | str) -> str:
    """The header value ElevenLabs sends: ``t=<ts>,v0=<hex HMAC-SHA256(secret, "<ts>.<body>")>``."""
    return f"t={timestamp},v0={_digest(secret, str(timestamp), body)}"


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(
    header: str | None,
    body: bytes,
    secrets: Iterable[str],
    *,
    now: float,
    tolerance_past_s: int,
    tolerance_future_s: int,
) -> None:
    """Raise `InvalidSignature` unless `header` signs the raw `body` with one of `secrets`.

    Any of several `v0=` values may match (secret rotation upstream); every secret is tried, and
    every comparison is constant-time.
    """
    if not header or not header.strip():
        raise InvalidSignature("Missing signature header")
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = value.strip()
        elif key == "v0":
            candidates.append(value.strip().lower())
    if timestamp is None or not timestamp.isascii() or not timestamp.isdigit():
        raise InvalidSignature("Malformed signature header: no timestamp")
    if not candidates:
        raise InvalidSignature("No signature hash found with expected scheme v0")
    age = now - int(timestamp)
    if age > tolerance_past_s or -age > tolerance_future_s:
        raise InvalidSignature("Timestamp outside the tolerance zone")
    keys = [s for s in secrets if s]
    if not keys:
        raise InvalidSignature("No webhook secret configured")
    matched = False
    for secret in keys:
        expected = _digest(secret, timestamp, body).encode()
        for candidate in candidates:
            # No early exit: the time taken does not depend on which (if any) pair matched.
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise InvalidSignature("Signature hash does not match the expected signature for the payload")


# ---- payloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """The outer `{type, event_timestamp, data}` of a post-call webhook."""

    type: str
    event_timestamp: int | None
    data: JSON


def parse_envelope(body: bytes) -> Envelope:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload("Body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedPayload("Body is not a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedPayload("Missing webhook type")
    data = value.get("data")
    return Envelope(kind, _int(value.get("event_timestamp")), data if isinstance(data, dict) else {})


def post_call_message_id(webhook_type: str, conversation_id: str) -> str:
    """Deterministic message id: a replayed delivery has the same id and is deduplicated."""
    return hashlib.sha256(f"{webhook_type}:{conversation_id}".encode()).hexdigest()[:32]


def received_event(envelope: Envelope, *, correlation_id: str | None = None) -> PostCallWebhookReceived:
    """Map a `post_call_transcription` / `call_initiation_failure` webhook to our event (tolerant)."""
    if envelope.type not in PUBLISHED_TYPES:
        raise MalformedPayload(f"Unsupported webhook type {envelope.type!r}")
    data = envelope.data
    conversation_id = data.get("conversation_id")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise MalformedPayload("Missing data.conversation_id")
    if envelope.event_timestamp is None:
        raise MalformedPayload("Missing event_timestamp")
    metadata = _dict(data.get("metadata"))
    analysis = _dict(data.get("analysis"))
    return PostCallWebhookReceived(
        message_id=post_call_message_id(envelope.type, conversation_id),
        correlation_id=correlation_id,
        webhook_type=envelope.type,  # checked against PUBLISHED_TYPES above
        conversation_id=conversation_id,
        agent_id=_str(data.get("agent_id")),
        event_timestamp=envelope.event_timestamp,
        conversation_status=_str(data.get("status")),
        call_duration_secs=_int(metadata.get("call_duration_secs")),
        termination_reason=_str(metadata.get("termination_reason")),
        failure_reason=_str(data.get("failure_reason")),
        call_successful=_str(analysis.get("call_successful")),
        transcript_summary=_str(analysis.get("transcript_summary")),
        data_collection=data_collection(analysis.get("data_collection_results")),
    )


def data_collection(results: Any) -> JSON:
    """`{id: {value, rationale, ...}}` → `{id: value}`; entries without a dict become None."""
    if not isinstance(results, Mapping):
        return {}
    return {
        str(key): entry.get("value") if isinstance(entry, Mapping) else None for key, entry in results.items()
    }


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


# ---- registration -------------------------------------------------------------------------------


def post_call_webhook_url(public_url: str) -> str:
    """`public_url` is the public base ending in /api/v1 that reaches this service."""
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(422, "Validation error", "public_url must be an absolute http(s) URL")
    return f"{public_url.strip().rstrip('/')}/{POST_CALL_ROUTE}"


def convai_webhook_settings(webhook_id: str) -> JSON:
    return {
        "webhooks": {
            "post_call_webhook_id": webhook_id,
            "events": list(WEBHOOK_EVENTS),
            "transcript_format": "json",
        }
    }


def fernet(secret_key: str) -> Fernet:
    """Fernet for SWITCHBOARD_SECRET_KEY: used as is when it is a Fernet key, else derived (SHA-256)."""
    try:
        return fernet_for(secret_key)
    except ValueError as exc:
        raise CommandError(500, "Configuration error", str(exc)) from exc


def encrypt_secret(secret_key: str, secret: str) -> str:
    return fernet(secret_key).encrypt(secret.encode()).decode()


def decrypt_secret(secret_key: str, token: str) -> str | None:
    """The clear secret, or None when the token was made with another key (key rotated)."""
    try:
        return fernet(secret_key).decrypt(token.encode()).decode()
    except (InvalidToken, CommandError):
        return None


# ---- tool-call authentication -------------------------------------------------------------------

TOOL_TOKEN_HEADER = "X-Switchboard-Tool-Token"  # noqa: S105 - a header name, not a secret
PRODUCTS_ROUTE = "ecommerce/products"
ORDERS_ROUTE = "ecommerce/orders"


def email_route(template_id: str) -> str:
    return f"email/{template_id}"


def tool_token_valid(secret_key: str, route: str, token: str | None) -> bool:
    """True when `token` is ``v1.<nonce>.<hex HMAC-SHA256(key, "<route>|<nonce>")>`` for THIS route.

    Provisioning mints the token (its `tool_token`); we recompute the MAC from the route being served
    and the nonce in the token, and compare in constant time. Nothing is stored.
    """
    if not secret_key or not token:
        return False
    version, sep, rest = token.strip().partition(".")
    nonce, sep2, mac = rest.rpartition(".")
    if version != "v1" or not sep or not sep2 or not nonce or len(nonce) > 200:
        return False
    expected = hmac.new(secret_key.encode(), f"{route}|{nonce}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), mac.lower().encode("utf-8", "replace"))


# ---- spoken answers -----------------------------------------------------------------------------

NO_STORE_MESSAGE = "I can't look up the store on this call."
STORE_MESSAGES = {
    "unauthorized": "I can't access the store right now.",
    "rate_limited": "The store is busy right now. Please try again in a moment.",
    "timeout": "The store is taking too long to answer right now.",
}
STORE_UNREACHABLE_MESSAGE = "I couldn't reach the store right now."


def store_error_message(code: str) -> str:
    return STORE_MESSAGES.get(code, STORE_UNREACHABLE_MESSAGE)


def _money(amount: str | None, currency: str | None) -> str:
    if amount is None:
        return ""
    return f"{amount} {currency}" if currency else amount


def products_message(products: list[JSON], query: str) -> str:
    if not products:
        return (
            f"I couldn't find any products matching {query!r}." if query else "I couldn't find any products."
        )
    parts = []
    for p in products:
        price = _money(p.get("price"), p.get("currency"))
        stock = "in stock" if p.get("in_stock") else "out of stock"
        parts.append(f"{p['name']}{' for ' + price if price else ''}, {stock}")
    noun = "product" if len(products) == 1 else "products"
    return f"I found {len(products)} {noun}: " + "; ".join(parts) + "."


def orders_message(orders: list[JSON], *, by_number: bool) -> str:
    if not orders:
        if by_number:
            return "I couldn't find an order with that number."
        return "I couldn't find any orders for that e-mail address."
    parts = []
    for o in orders:
        count = sum(int(i.get("quantity") or 0) for i in o.get("items", []))
        text = f"Order {o['order_number']} is {o['status']}"
        details = []
        if count:
            details.append(f"{count} item{'s' if count != 1 else ''}")
        if total := _money(o.get("total"), o.get("currency")):
            details.append(f"total {total}")
        if details:
            text += " (" + ", ".join(details) + ")"
        numbers = [t.get("number") for t in o.get("tracking", []) if t.get("number")]
        if numbers:
            text += f", tracking number {', '.join(numbers)}"
        parts.append(text)
    return ". ".join(parts) + "."


# ---- e-mail tool --------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]+")


@dataclass(frozen=True)
class TemplateParam:
    name: str
    required: bool


def template_params(raw: Any) -> list[TemplateParam]:
    out = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            out.append(TemplateParam(item["name"], bool(item.get("required"))))
    return out


def parameter_values(params: list[TemplateParam], body: Mapping[str, Any]) -> dict[str, str]:
    """The declared parameters present in the body, as strings (unknown keys are ignored)."""
    values: dict[str, str] = {}
    for p in params:
        value = body.get(p.name)
        if value is None or isinstance(value, dict | list):
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text.strip():
            values[p.name] = text
    return values


def missing_required(params: list[TemplateParam], values: Mapping[str, str]) -> list[str]:
    return [p.name for p in params if p.required and p.name not in values]


def missing_message(names: list[str]) -> str:
    spoken = [n.replace("_", " ") for n in names]
    listed = spoken[0] if len(spoken) == 1 else ", ".join(spoken[:-1]) + " and " + spoken[-1]
    return f"I still need the {listed} before I can send that e-mail."


NO_EMAIL_MESSAGE = "I don't have an e-mail address for you on file."
UNKNOWN_TEMPLATE_MESSAGE = "I can't send that e-mail right now."
NO_CONVERSATION_MESSAGE = "I can't tell which call this is, so I can't send that e-mail."


def render(template: str, values: Mapping[str, str]) -> str:
    """Plain `{{name}}` substitution: unknown placeholders become empty; nothing is evaluated."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), ""), template)


def render_subject(template: str, values: Mapping[str, str]) -> str:
    """One line: line breaks (from the template or any value) become spaces."""
    return " ".join(_LINE_BREAKS.sub(" ", render(template, values)).split())


def placeholder_values(
    parameters: Mapping[str, str], customer_name: str | None, customer_email: str | None
) -> dict[str, str]:
    """Agent parameters, then the session placeholders (the session wins for its own names)."""
    session = {
        "customer_name": customer_name or "",
        "customer_email": customer_email or "",
        "name": customer_name or "",
        "email": customer_email or "",
    }
    return {**parameters, **session}


def invocation_key(conversation_id: str, template_id: str, parameters: Mapping[str, str]) -> str:
    """The same conversation, template and parameters are the same invocation (no tool-call id)."""
    canonical = json.dumps(
        {"c": conversation_id, "t": template_id, "p": dict(parameters)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def invocation_message_id(key_hash: str, first_seen_unix_us: int) -> str:
    """Stable SendEmail message id for one invocation window (notifier deduplicates on it)."""
    return hashlib.sha256(f"email:{key_hash}:{first_seen_unix_us}".encode()).hexdigest()[:32]


def mask_email(address: str) -> str:
    local, _, domain_part = address.partition("@")
    return f"{local[:1]}***@{domain_part}" if domain_part else "***"


def sent_message(template_id: str, to_email: str) -> str:
    return f"Done — I've sent the {template_id.replace('_', ' ')} e-mail to {mask_email(to_email)}."


def one_line(value: str | None) -> str | None:
    return " ".join(_LINE_BREAKS.sub(" ", value).split()) if value else value
