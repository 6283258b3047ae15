"""Rules of the tool-webhooks service: signatures, payload mapping, secrets (pure, no I/O)."""

from __future__ import annotations

import email.errors
import email.header
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from bus.errors import CommandError
from contracts.text import without_nul
from contracts.webhooks import (
    CALL_SUCCESSFUL_MAX_CHARS,
    CONVERSATION_ID_MAX_CHARS,
    PostCallTranscriptPart,
    PostCallWebhookReceived,
)

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


# ---- signature ----------------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int | str) -> str:
    """The header value ElevenLabs sends: ``t=<ts>,v0=<hex HMAC-SHA256(secret, "<ts>.<body>")>``."""
    return f"t={timestamp},v0={_digest(secret, str(timestamp), body)}"


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignatureHeader:
    """A parsed `ElevenLabs-Signature` header whose timestamp is within the tolerance window."""

    timestamp: str
    candidates: tuple[str, ...]


def parse_signature_header(
    header: str | None, *, now: float, tolerance_past_s: int, tolerance_future_s: int
) -> SignatureHeader:
    """Check everything that does not need the body; raise `InvalidSignature` (missing, malformed, stale).

    The header arrives before the body, so a delivery failing here is refused without reading it.
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
    return SignatureHeader(timestamp, tuple(candidates))


class SignatureCheck:
    """HMAC-SHA256 of ``"<t>.<body>"`` under every secret, fed chunk by chunk as the body streams in.

    Any of several `v0=` values may match (secret rotation upstream); every secret is tried, and
    every comparison is constant-time. Raises `InvalidSignature` when no secret is configured.
    """

    def __init__(self, header: SignatureHeader, secrets: Iterable[str]) -> None:
        keys = [s for s in secrets if s]
        if not keys:
            raise InvalidSignature("No webhook secret configured")
        self._header = header
        self._macs = [
            hmac.new(k.encode("utf-8"), f"{header.timestamp}.".encode(), hashlib.sha256) for k in keys
        ]

    def update(self, chunk: bytes) -> None:
        for mac in self._macs:
            mac.update(chunk)

    def verify(self) -> None:
        """Raise `InvalidSignature` unless one secret's digest matches one `v0=` value."""
        matched = False
        for mac in self._macs:
            expected = mac.hexdigest().encode()
            for candidate in self._header.candidates:
                # No early exit: the time taken does not depend on which (if any) pair matched.
                matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
        if not matched:
            raise InvalidSignature("Signature hash does not match the expected signature for the payload")


def verify_signature(
    header: str | None,
    body: bytes,
    secrets: Iterable[str],
    *,
    now: float,
    tolerance_past_s: int,
    tolerance_future_s: int,
) -> None:
    """Raise `InvalidSignature` unless `header` signs the raw `body` with one of `secrets` (whole body)."""
    parsed = parse_signature_header(
        header, now=now, tolerance_past_s=tolerance_past_s, tolerance_future_s=tolerance_future_s
    )
    check = SignatureCheck(parsed, secrets)
    check.update(body)
    check.verify()


# ---- payloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """The outer `{type, event_timestamp, data}` of a post-call webhook."""

    type: str
    event_timestamp: int | None
    data: JSON


def parse_envelope(body: bytes | str) -> Envelope:
    """The webhook's envelope. A NUL character in its text (a transcript, an analysis) becomes
    U+FFFD: PostgreSQL cannot store it, and the call's outcome must not be lost for it
    (`contracts.text`)."""
    try:
        value = without_nul(json.loads(body))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedPayload("Body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedPayload("Body is not a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedPayload("Missing webhook type")
    data = value.get("data")
    return Envelope(kind, _int(value.get("event_timestamp")), data if isinstance(data, dict) else {})


# Strings longer than this are left out when skimming (a post_call_audio's base64 `full_audio`).
SKIM_MAX_STRING_BYTES = 4096
_STRING_STOP = re.compile(rb'["\\]')
# A whole string token, escapes included (matched in C: most strings end in the chunk they start in).
_STRING_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class TooLargeToSkim(Exception):
    """What remains of a body after leaving out its long strings is still over the limit."""


def skim(chunks: Iterable[bytes], *, max_bytes: int, max_string_bytes: int = SKIM_MAX_STRING_BYTES) -> bytes:
    """The JSON text of `chunks` with every string longer than `max_string_bytes` replaced by `null`.

    One pass, never holding a long string: a post_call_audio body (megabytes of base64 in one
    string) skims to a few hundred bytes whose `type` and ids can be read without decoding the
    audio. Not a validator: invalid JSON stays invalid (or becomes so) and fails to parse later.
    `"` and `\\` never occur inside a multi-byte UTF-8 sequence, so scanning bytes is exact.
    Raises `TooLargeToSkim` when the result would exceed `max_bytes`.
    """
    out = bytearray()
    text = bytearray()  # the current string's bytes while it is short enough to keep
    in_string = escaped = dropped = False

    def keep(piece: bytes) -> None:
        nonlocal dropped
        if dropped:
            return
        text.extend(piece)
        if len(text) > max_string_bytes:
            dropped = True
            text.clear()

    for chunk in chunks:
        i, n = 0, len(chunk)
        while i < n:
            if not in_string:
                j = chunk.find(b'"', i)
                out += chunk[i:] if j < 0 else chunk[i:j]
                if len(out) > max_bytes:
                    raise TooLargeToSkim
                if j < 0:
                    break
                token = _STRING_TOKEN.match(chunk, j)
                if token is not None:  # the whole string is in this chunk
                    end = token.end()
                    out += chunk[j:end] if end - j - 2 <= max_string_bytes else b"null"
                    i = end
                    continue
                in_string, dropped, i = True, False, j + 1
                text.clear()
            elif escaped:  # the byte after a backslash belongs to the string, whatever it is
                keep(chunk[i : i + 1])
                escaped, i = False, i + 1
            else:
                found = _STRING_STOP.search(chunk, i)
                stop = n if found is None else found.start()
                keep(chunk[i:stop])
                if stop >= n:
                    break
                if chunk[stop] == 0x5C:  # a backslash: the next byte is escaped
                    keep(b"\\")
                    escaped = True
                else:  # the closing quote
                    out += b"null" if dropped else b'"' + text + b'"'
                    in_string = False
                i = stop + 1
    return bytes(out)


def post_call_message_id(webhook_type: str, conversation_id: str) -> str:
    """Deterministic message id: a replayed delivery has the same id and is deduplicated."""
    return hashlib.sha256(f"{webhook_type}:{conversation_id}".encode()).hexdigest()[:32]


def received_event(
    envelope: Envelope, *, received_at: int, correlation_id: str | None = None
) -> PostCallWebhookReceived:
    """Map a `post_call_transcription` / `call_initiation_failure` webhook to our event (tolerant).

    A delivery without `event_timestamp` is dated `received_at` (unix seconds): it is authentic
    and ElevenLabs will not send it again, so it is never refused for that.
    """
    if envelope.type not in PUBLISHED_TYPES:
        raise MalformedPayload(f"Unsupported webhook type {envelope.type!r}")
    data = envelope.data
    conversation_id = data.get("conversation_id")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise MalformedPayload("Missing data.conversation_id")
    if len(conversation_id) > CONVERSATION_ID_MAX_CHARS:
        # Signed, but no ElevenLabs id is this long: every consumer would fail to store it.
        raise MalformedPayload(f"data.conversation_id over {CONVERSATION_ID_MAX_CHARS} characters")
    metadata = _dict(data.get("metadata"))
    analysis = _dict(data.get("analysis"))
    call_successful = _str(analysis.get("call_successful"))
    if call_successful is not None and len(call_successful) > CALL_SUCCESSFUL_MAX_CHARS:
        call_successful = None  # not one of ElevenLabs' values
    carrier = carrier_answer(metadata) if envelope.type == "call_initiation_failure" else CarrierAnswer()
    return PostCallWebhookReceived(
        message_id=post_call_message_id(envelope.type, conversation_id),
        correlation_id=correlation_id,
        webhook_type=envelope.type,  # checked against PUBLISHED_TYPES above
        conversation_id=conversation_id,
        agent_id=_str(data.get("agent_id")),
        event_timestamp=received_at if envelope.event_timestamp is None else envelope.event_timestamp,
        conversation_status=_str(data.get("status")),
        call_duration_secs=_int(metadata.get("call_duration_secs")),
        termination_reason=_str(metadata.get("termination_reason")),
        failure_reason=_str(data.get("failure_reason")),
        carrier=carrier.carrier,
        sip_status_code=carrier.sip_status_code,
        carrier_call_status=carrier.call_status,
        call_successful=call_successful,
        transcript_summary=_str(analysis.get("transcript_summary")),
        data_collection=data_collection(analysis.get("data_collection_results")),
        evaluation_criteria=evaluation_criteria(analysis.get("evaluation_criteria_results")),
    )


# Kafka refuses messages over ~1 MiB: a transcript travels in parts of at most this much JSON.
TRANSCRIPT_PART_BYTES = 256 * 1024
# Room left in a bus message for a part's other fields and headers.
_PART_HEADROOM_BYTES = 8 * 1024


def transcript_part_bytes(bus_max_message_bytes: int) -> int:
    """JSON bytes per transcript part: 256 KiB, less when BUS_MAX_MESSAGE_BYTES is set lower."""
    return max(min(TRANSCRIPT_PART_BYTES, bus_max_message_bytes - _PART_HEADROOM_BYTES), 1024)


def transcript_turns(data: Mapping[str, Any]) -> list[JSON]:
    """`data.transcript` as the turns the call read model keeps: role, message, time_in_call_secs.

    Tool calls, LLM usage and retrieval details are left out; entries that are not objects too.
    """
    raw = data.get("transcript")
    turns: list[JSON] = []
    for entry in raw if isinstance(raw, list) else []:
        if isinstance(entry, Mapping):
            seconds = entry.get("time_in_call_secs")
            turns.append(
                {
                    "role": _text(entry.get("role")),
                    "message": _text(entry.get("message")),
                    "time_in_call_secs": seconds
                    if isinstance(seconds, int | float) and not isinstance(seconds, bool)
                    else None,
                }
            )
    return turns


def _text(value: Any) -> str | None:
    # A lone surrogate (from a "\ud83d" escape) cannot be encoded as UTF-8 on the bus.
    return value.encode("utf-8", "replace").decode("utf-8") if isinstance(value, str) else None


def transcript_slices(turns: list[JSON], max_bytes: int = TRANSCRIPT_PART_BYTES) -> list[str]:
    """The compact JSON text of `turns`, cut so each slice, itself encoded as a JSON string, is at
    most `max_bytes` of UTF-8 (escaping can make it grow: quotes, control characters)."""
    text = json.dumps(turns, ensure_ascii=False, separators=(",", ":"))
    slices: list[str] = []
    start = 0
    while start < len(text):
        size = max_bytes // 2
        while True:
            piece = text[start : start + size]
            if size == 1 or len(json.dumps(piece, ensure_ascii=False).encode()) <= max_bytes:
                break
            size //= 2
        slices.append(piece)
        start += len(piece)
    return slices


def transcript_part_message_id(conversation_id: str, part_index: int) -> str:
    return hashlib.sha256(f"transcript:{conversation_id}:{part_index}".encode()).hexdigest()[:32]


def transcript_parts(
    envelope: Envelope, *, max_part_bytes: int = TRANSCRIPT_PART_BYTES, correlation_id: str | None = None
) -> list[PostCallTranscriptPart]:
    """The transcript of a `post_call_transcription` as events (none when it has no turns)."""
    conversation_id = envelope.data.get("conversation_id")
    if envelope.type != "post_call_transcription" or not isinstance(conversation_id, str):
        return []
    turns = transcript_turns(envelope.data)
    if not turns:
        return []
    slices = transcript_slices(turns, max_part_bytes)
    return [
        PostCallTranscriptPart(
            message_id=transcript_part_message_id(conversation_id, index),
            correlation_id=correlation_id,
            conversation_id=conversation_id,
            part_index=index,
            part_count=len(slices),
            turn_count=len(turns),
            transcript_json=piece,
        )
        for index, piece in enumerate(slices)
    ]


@dataclass(frozen=True)
class CarrierAnswer:
    carrier: Literal["sip", "twilio"] | None = None
    sip_status_code: int | None = None
    call_status: str | None = None


def carrier_answer(metadata: Mapping[str, Any]) -> CarrierAnswer:
    """The carrier's answer in a `call_initiation_failure`'s metadata: `{"type": "sip", "body":
    {"sip_status_code": 486, ...}}` or `{"type": "twilio", "body": {"CallStatus": "busy",
    "SipResponseCode": "486", ...}}` (Twilio's status-callback form fields, so numbers are strings).
    Only these fields are kept: the bodies also hold phone numbers and account ids."""
    body = _dict(metadata.get("body"))
    kind = metadata.get("type")
    if kind == "sip":
        return CarrierAnswer("sip", _code(body.get("sip_status_code")))
    if kind == "twilio":
        return CarrierAnswer("twilio", _code(body.get("SipResponseCode")), _str(body.get("CallStatus")))
    return CarrierAnswer()


def _code(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return _int(value)


def data_collection(results: Any) -> JSON:
    """`{id: {value, rationale, ...}}` → `{id: value}`; entries without a dict become None."""
    if not isinstance(results, Mapping):
        return {}
    return {
        str(key): entry.get("value") if isinstance(entry, Mapping) else None for key, entry in results.items()
    }


def evaluation_criteria(results: Any) -> JSON:
    """`{id: {criteria_id, result, rationale}}` → `{id: {result, rationale}}`; entries without a
    dict become None."""
    if not isinstance(results, Mapping):
        return {}
    return {
        str(key): {"result": _str(entry.get("result")), "rationale": _str(entry.get("rationale"))}
        if isinstance(entry, Mapping)
        else None
        for key, entry in results.items()
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


def lost_registration(hook: Mapping[str, Any], webhook_url: str, since_unix: int) -> bool:
    """Is this listed workspace webhook one a registration just created and lost the answer of?

    Ours (name and URL), created since the registration began, and not in use: a webhook the
    ConvAI settings point at is an earlier, completed registration.
    """
    created = hook.get("created_at_unix")
    return (
        hook.get("name") == WEBHOOK_NAME
        and hook.get("webhook_url") == webhook_url
        and isinstance(created, int)
        and created >= since_unix
        and not hook.get("usage")
    )


def convai_webhook_settings(webhook_id: str) -> JSON:
    return {
        "webhooks": {
            "post_call_webhook_id": webhook_id,
            "events": list(WEBHOOK_EVENTS),
            "transcript_format": "json",
        }
    }


# ---- tool-call authentication -------------------------------------------------------------------

TOOL_TOKEN_HEADER = "X-Switchboard-Tool-Token"  # noqa: S105 - a header name, not a secret
PRODUCTS_ROUTE = "ecommerce/products"
ORDERS_ROUTE = "ecommerce/orders"
OPT_OUT_ROUTE = "calls/opt-out"
CALLBACK_ROUTE = "calls/callback"


def email_route(template_id: str) -> str:
    return f"email/{template_id}"


TokenRefusal = Literal["missing", "invalid", "unknown_tool", "deleted", "superseded"]


def tool_token_refusal(
    generation: int,
    *,
    known_generation: int | None,
    previous_valid_until: datetime | None,
    deleted: bool,
    now: datetime,
) -> TokenRefusal | None:
    """Why a genuine token (signed for this route, `bus.secrets.read_tool_token`) of `generation`
    is refused, given what tool-webhooks knows of its tool; None when it is accepted.

    Accepted: the current generation, a newer one (a rotation whose event has not arrived yet: only
    provisioning can mint it), and the previous one until `previous_valid_until`. A tool never heard
    of (no creation event) or deleted accepts nothing.
    """
    if known_generation is None:
        return "deleted" if deleted else "unknown_tool"
    if deleted:
        return "deleted"
    if generation >= known_generation:
        return None
    if generation == known_generation - 1 and previous_valid_until is not None and now < previous_valid_until:
        return None
    return "superseded"


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


# ---- who may hear an order ----------------------------------------------------------------------

NOT_VERIFIED_MESSAGE = (
    "I couldn't verify that order with your details. "
    "Could you tell me the e-mail address or the postcode on the order?"
)
MIN_PHONE_DIGITS = 7
_NOT_DIGIT = re.compile(r"\D")
_TRUNK_NOTE = re.compile(r"\(\s*0\s*\)")  # the "(0)" of "+44 (0)20 …": dialled nationally only
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


@dataclass(frozen=True)
class Caller:
    """What the caller is known by: the call's customer session, and what they said on the call."""

    session_email: str | None = None
    session_phone: str | None = None
    given_email: str | None = None
    given_postcode: str | None = None


def same_email(a: str | None, b: str | None) -> bool:
    return bool(a and b and a.strip().casefold() == b.strip().casefold())


def same_phone(a: str | None, b: str | None) -> bool:
    """The same number however it is written: ``+1 (415) 555-0100`` = ``415.555.0100``, ``+44 20
    7946 0958`` = ``020 7946 0958`` = ``+44 (0)20 7946 0958``. Digits only, without the international
    ``00`` or national trunk ``0`` prefixes; one must end with the other, which has at least 7 digits."""
    x, y = (_NOT_DIGIT.sub("", _TRUNK_NOTE.sub("", p or "")).lstrip("0") for p in (a, b))
    short, long = sorted((x, y), key=len)
    return len(short) >= MIN_PHONE_DIGITS and long.endswith(short)


def same_postcode(a: str | None, b: str | None) -> bool:
    """Case, spaces and hyphens aside (``sw1a 1aa`` = ``SW1A1AA``); a US ZIP matches its ZIP+4."""
    x, y = (_NOT_ALNUM.sub("", p or "").upper() for p in (a, b))
    if not x or not y:
        return False
    if x.isdigit() and y.isdigit() and {len(x), len(y)} == {5, 9}:
        return x[:5] == y[:5]
    return x == y


def order_matches_caller(
    caller: Caller, billing_email: str | None, billing_phone: str | None, billing_postcode: str | None
) -> bool:
    """True when the order's billing contact is the caller's: the session's e-mail or phone, or
    the billing e-mail or postcode the caller gave. Order numbers are sequential, so a number alone
    proves nothing."""
    return (
        same_email(caller.session_email, billing_email)
        or same_email(caller.given_email, billing_email)
        or same_phone(caller.session_phone, billing_phone)
        or same_postcode(caller.given_postcode, billing_postcode)
    )


# ---- e-mail tool --------------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[bBqQ]\?")  # the opening of an RFC 2047 encoded-word


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
    """One line: line breaks and control characters (from the template or any value, raw or inside
    an RFC 2047 encoded-word) become spaces."""
    return header_text(render(template, values))


_ENCODED_WORD_ROUNDS = 3


def header_text(value: str) -> str:
    """A caller's words made safe for one header line. Encoded-words (`=?UTF-8?Q?=0D=0A?=`) are
    decoded to the text they stand for, since mail programs would decode them too, and that text is
    then flattened: CR/LF, NUL, other controls and U+2028/U+2029 become spaces. What still looks like
    an encoded-word after a few rounds (nested encodings) is broken up. The notifier checks again."""
    for _ in range(_ENCODED_WORD_ROUNDS):
        if not _ENCODED_WORD.search(value):
            break
        value = _flatten(_decode_words(value))
    value = _flatten(value)
    return value.replace("=?", "= ?") if _ENCODED_WORD.search(value) else value


def _decode_words(value: str) -> str:
    try:
        parts = email.header.decode_header(value)
    except (ValueError, LookupError, AssertionError, email.errors.HeaderParseError):
        return value.replace("=?", "= ?")
    text: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            text.append(chunk)
            continue
        try:
            text.append(chunk.decode(charset or "ascii", errors="replace"))
        except LookupError:  # an unknown charset: byte for byte, so no line break can hide
            text.append(chunk.decode("latin-1"))
    # decode_header drops the whitespace between an encoded-word and plain text: join with spaces.
    return " ".join(t.strip() for t in text)


def _flatten(value: str) -> str:
    cleaned = "".join(" " if _control(c) else c for c in value)
    return " ".join(cleaned.split())


def _control(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Zl", "Zp")


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
    return header_text(value) if value else value
