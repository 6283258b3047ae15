"""Rules of the tool-webhooks service: signatures, payload mapping, secrets (pure, no I/O)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

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
    if not secret_key:
        raise CommandError(500, "Configuration error", "SWITCHBOARD_SECRET_KEY is not set")
    try:
        if len(base64.urlsafe_b64decode(secret_key.encode())) == 32:
            return Fernet(secret_key.encode())
    except (binascii.Error, ValueError):
        pass
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


def encrypt_secret(secret_key: str, secret: str) -> str:
    return fernet(secret_key).encrypt(secret.encode()).decode()


def decrypt_secret(secret_key: str, token: str) -> str | None:
    """The clear secret, or None when the token was made with another key (key rotated)."""
    try:
        return fernet(secret_key).decrypt(token.encode()).decode()
    except (InvalidToken, CommandError):
        return None
