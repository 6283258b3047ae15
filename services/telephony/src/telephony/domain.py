"""Rules and ElevenLabs payloads of the telephony service (pure functions, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import elevenlabs_client
from bus.errors import CommandError
from contracts.telephony import (
    FINAL_CALL_STATUSES,
    ImportSipTrunkNumber,
    ImportTwilioNumber,
    PhoneNumberRecord,
    PlaceCall,
    Refusal,
    TrunkConfig,
    UpdatePhoneNumber,
)
from contracts.webhooks import PostCallWebhookReceived

JSON = dict[str, Any]
# (ciphertext, the command field it came in) -> the secret; see `bus.secrets.message_context`.
Decrypt = Callable[[str, str], str]

ATTEMPT_VARIABLE = "switchboard_attempt_id"
"""Dynamic variable carrying the PlaceCall message id, so a restart can find the conversation."""

NO_RESULT_REASON = "no result from ElevenLabs"


class DialFailed(CommandError):
    """Nobody was called; becomes `CallDialFailed`. `refusal` says whose fix it is when the carrier
    or our checks can tell: "configuration" (the caller's setup) or "recipient" (this number)."""

    def __init__(
        self, status_code: int, error: str, detail: str | None = None, *, refusal: Refusal | None = None
    ) -> None:
        super().__init__(status_code, error, detail)
        self.refusal = refusal


def without_none(values: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in values.items() if v is not None}


# ---- phone numbers ------------------------------------------------------------------------------


def twilio_import_body(command: ImportTwilioNumber, decrypt: Decrypt) -> JSON:
    """`POST /v1/convai/phone-numbers` body for a Twilio number; the token decrypted only here."""
    return {
        "provider": "twilio",
        "phone_number": command.phone_number,
        "label": command.label,
        "sid": command.sid,
        "token": decrypt(command.token_encrypted, "token_encrypted"),
    }


# Which trunk fields each direction takes: the official OpenAPI spec's
# `InboundSIPTrunkConfigRequestModel` and `OutboundSIPTrunkConfigRequestModel` (credentials apart).
INBOUND_TRUNK_FIELDS = frozenset(
    {"allowed_addresses", "allowed_numbers", "media_encryption", "remote_domains", "attributes_to_headers"}
)
OUTBOUND_TRUNK_FIELDS = frozenset(
    {"address", "transport", "media_encryption", "headers", "attributes_to_headers", "enabled_codecs"}
)


def trunk_body(config: TrunkConfig | None, decrypt: Decrypt, *, inbound: bool) -> JSON | None:
    """One direction's trunk config for ElevenLabs, every field carried.

    Raises `CommandError` 422 for a field the direction does not take (ElevenLabs would ignore it
    without a word) or credentials without a username (ElevenLabs requires one).
    """
    if config is None:
        return None
    allowed = INBOUND_TRUNK_FIELDS if inbound else OUTBOUND_TRUNK_FIELDS
    given = without_none(config.model_dump(exclude={"credentials"}))
    direction = "inbound" if inbound else "outbound"
    if unsupported := sorted(set(given) - allowed):
        raise CommandError(
            422, "Validation error", f"{direction}_trunk_config does not take: {', '.join(unsupported)}"
        )
    if not inbound and not config.address:
        raise CommandError(422, "Validation error", "outbound_trunk_config.address is required")
    body = dict(given)
    if config.credentials is not None:
        if not config.credentials.username:
            raise CommandError(
                422, "Validation error", f"{direction}_trunk_config.credentials needs a username"
            )
        password = config.credentials.password_encrypted
        body["credentials"] = without_none(
            {
                "username": config.credentials.username,
                "password": decrypt(password, "password_encrypted") if password else None,
            }
        )
    return body


def sip_import_body(command: ImportSipTrunkNumber, decrypt: Decrypt) -> JSON:
    """`POST /v1/convai/phone-numbers` body for a SIP trunk number; passwords decrypted only here.

    Shape: the official spec's `CreateSIPTrunkPhoneNumberRequestV2`.
    """
    return without_none(
        {
            "provider": "sip_trunk",
            "phone_number": command.phone_number,
            "label": command.label,
            "supports_inbound": command.supports_inbound,
            "supports_outbound": command.supports_outbound,
            "agent_id": command.agent_id,
            "inbound_trunk_config": trunk_body(command.inbound_trunk_config, decrypt, inbound=True),
            "outbound_trunk_config": trunk_body(command.outbound_trunk_config, decrypt, inbound=False),
        }
    )


_SECRET_KEYS = frozenset({"token", "password"})


def secrets_in(body: Any) -> list[str]:
    """Every clear secret in an import body (Twilio `token`, SIP `password`s)."""
    found: list[str] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            if key in _SECRET_KEYS and isinstance(value, str) and value:
                found.append(value)
            else:
                found.extend(secrets_in(value))
    elif isinstance(body, list):
        for item in body:
            found.extend(secrets_in(item))
    return found


def redact(text: str | None, secrets: list[str]) -> str | None:
    """`text` with every secret replaced; upstream 422 details may echo the request body."""
    if text is None:
        return None
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def phone_patch_body(command: UpdatePhoneNumber) -> JSON:
    return without_none({"agent_id": command.agent_id, "label": command.label})


def phone_record(phone: Mapping[str, Any], created_at_unix: int) -> PhoneNumberRecord:
    """Our record of an ElevenLabs phone object (holds no secrets: trunks only report a username)."""
    assigned = phone.get("assigned_agent") or {}
    username = None
    for key in ("outbound_trunk", "inbound_trunk"):
        trunk = phone.get(key) or {}
        if trunk.get("username"):
            username = str(trunk["username"])
            break
    return PhoneNumberRecord(
        phone_number_id=str(phone["phone_number_id"]),
        phone_number=str(phone["phone_number"]),
        label=str(phone.get("label") or ""),
        provider="sip_trunk" if phone.get("provider") == "sip_trunk" else "twilio",
        agent_id=assigned.get("agent_id"),
        supports_inbound=bool(phone.get("supports_inbound", True)),
        supports_outbound=bool(phone.get("supports_outbound", True)),
        sip_username=username,
        created_at_unix=created_at_unix,
    )


def same_number(phone: Mapping[str, Any], phone_number: str, provider: str) -> bool:
    return phone.get("phone_number") == phone_number and phone.get("provider") == provider


# ---- outbound calls -----------------------------------------------------------------------------


def attempt_user_id(attempt_id: str) -> str:
    """The conversation's `user_id`: lets recovery find an attempt's conversation with one filtered list."""
    return f"switchboard-attempt-{attempt_id}"


def call_body(command: PlaceCall) -> JSON:
    """Outbound-call body: the attempt id (the command message id) rides along twice, as a dynamic
    variable (checked on recovery) and as the conversation's `user_id` (searched on recovery)."""
    client_data: JSON = {
        "dynamic_variables": {**command.dynamic_variables, ATTEMPT_VARIABLE: command.message_id},
        "user_id": attempt_user_id(command.message_id),
    }
    if command.first_message is not None:
        client_data["conversation_config_override"] = {"agent": {"first_message": command.first_message}}
    return {
        "agent_id": command.agent_id,
        "agent_phone_number_id": command.agent_phone_number_id,
        "to_number": command.to_number,
        "conversation_initiation_client_data": client_data,
    }


@dataclass(frozen=True)
class Dialled:
    conversation_id: str
    call_sid: str | None = None
    sip_call_id: str | None = None


def dial_result(response: Mapping[str, Any]) -> Dialled:
    """The accepted dial, or `DialFailed` when ElevenLabs answered `success: false`: 422 when the
    carrier refused it for a reason `carrier_refusal` recognises (the caller must fix something),
    else 502 (we cannot tell, so it may be transient)."""
    conversation_id = response.get("conversation_id")
    if not response.get("success") or not conversation_id:
        message = str(response.get("message") or "") or None
        refusal = carrier_refusal(message)
        if refusal == "configuration":
            raise DialFailed(422, "Carrier refused the call", message, refusal=refusal)
        if refusal == "recipient":
            raise DialFailed(422, "Carrier refused the number", message, refusal=refusal)
        raise DialFailed(502, "Call could not be placed", message)
    return Dialled(
        conversation_id=str(conversation_id),
        call_sid=response.get("callSid") or response.get("call_sid"),
        sip_call_id=response.get("sip_call_id"),
    )


# Twilio REST error codes (https://www.twilio.com/docs/api/errors) that ElevenLabs passes on in a
# refused dial's `message`, e.g. "HTTP 401 error: Unable to create record: Authenticate".
_TWILIO_CONFIGURATION_CODES = frozenset(
    {
        20003,  # Authenticate: wrong account SID / auth token
        20005,  # Account not active
        20008,  # Test credentials cannot do this
        21210,  # 'From' phone number not verified
        21212,  # Invalid 'From' number (caller id)
        21213,  # 'From' phone number is required
        21215,  # Geo permissions: account not authorised to call this country/number
        21219,  # Trial account: 'To' number not verified
        21220,  # Invalid call state (account-level)
        32205,  # SIP trunk: 'From' number not registered with the trunk
    }
)
_TWILIO_RECIPIENT_CODES = frozenset(
    {
        13223,  # Dial: invalid phone number format
        13224,  # Dial: Twilio does not support calling this number or the number is invalid
        13225,  # Dial: forbidden phone number (blocked destination)
        13227,  # Dial: no international authorisation for this number's high-risk range
        21211,  # Invalid 'To' phone number
        21214,  # 'To' phone number cannot be reached
        21216,  # Call blocked: premium-rate or high-cost number
        21217,  # Phone number does not appear to be valid
        21401,  # Invalid phone number
        21407,  # This phone number type does not support voice
    }
)
_CONFIGURATION_WORDS = (
    "authenticate",
    "authentication",
    "credentials",
    "http 401",
    "http 403",
    "unverified",
    "not verified",
    "trial account",
    "geo permission",
    "geographic permission",
    "international permission",
    "not authorized to call",
    "not authorised to call",
    "'from' number",
    "'from' phone number",
    "caller id",
)
_RECIPIENT_WORDS = (
    "invalid 'to'",
    "'to' number",
    "'to' phone number",
    "not a valid phone number",
    "invalid phone number",
    "cannot be reached",
    "does not support calling this number",
)
_TWILIO_CODE = re.compile(r"(?<![\d+])(\d{5})(?!\d)")
_SIP_CODE = re.compile(r"sip[^0-9]{0,40}([1-6]\d\d)(?!\d)", re.IGNORECASE)


def carrier_refusal(message: str | None) -> Refusal | None:
    """Whom a refused dial's message blames: `configuration` (credentials, trial account, permissions:
    the same for every number), `recipient` (this number), or None when it does not say.

    Twilio error codes decide first, then a SIP status in the text (RFC 3261, `sip_refusal`), then
    Twilio's wording; a 5-digit run inside a phone number is not taken for a code.
    """
    text = message or ""
    for match in _TWILIO_CODE.finditer(text):
        code = int(match.group(1))
        if code in _TWILIO_CONFIGURATION_CODES:
            return "configuration"
        if code in _TWILIO_RECIPIENT_CODES:
            return "recipient"
    if (sip := _SIP_CODE.search(text)) is not None and (refusal := sip_refusal(int(sip.group(1)))):
        return refusal
    lowered = text.lower()
    if any(word in lowered for word in _CONFIGURATION_WORDS):
        return "configuration"
    if any(word in lowered for word in _RECIPIENT_WORDS):
        return "recipient"
    return None


def attempt_id_of(conversation: Mapping[str, Any]) -> str | None:
    client_data = conversation.get("conversation_initiation_client_data") or {}
    value = (client_data.get("dynamic_variables") or {}).get(ATTEMPT_VARIABLE)
    return str(value) if value is not None else None


def adopted(conversation: Mapping[str, Any]) -> Dialled:
    """What a dial would have answered, rebuilt from the conversation it created."""
    phone_call = (conversation.get("metadata") or {}).get("phone_call") or {}
    is_sip = phone_call.get("type") == "sip_trunking"
    return Dialled(
        conversation_id=str(conversation["conversation_id"]),
        call_sid=None if is_sip else phone_call.get("call_sid"),
        sip_call_id=(phone_call.get("call_id") or phone_call.get("call_sid")) if is_sip else None,
    )


def retry_after_from_detail(detail: str | None) -> float | None:
    """The delay the elevenlabs client put in a 429 error's detail."""
    return elevenlabs_client.retry_after_from_detail(detail)


# ---- call status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FinalStatus:
    status: str
    duration_seconds: int | None = None
    outcome: str | None = None
    summary: str | None = None
    reason: str | None = None
    refusal: Refusal | None = None
    # The analysis' data_collection_results as id -> value (campaign analysis rules read them);
    # carried along, not part of what the status is.
    data_collection: Mapping[str, Any] = field(default_factory=dict, compare=False)


def _mentions_voicemail(value: object) -> bool:
    return value is not None and "voicemail" in str(value).lower()


# SIP final responses (RFC 3261 section 21) as a call outcome, for `call_initiation_failure` webhooks
# whose `failure_reason` is "unknown": the carrier's answer is in their metadata.
_SIP_BUSY = frozenset({486, 600, 603})  # Busy Here, Busy Everywhere, Decline
_SIP_NO_ANSWER = frozenset({408, 480, 487})  # Request Timeout, Temporarily Unavailable, Request Terminated
_SIP_RECIPIENT = frozenset(
    {404, 410, 484, 485, 604}
)  # Not Found, Gone, Address Incomplete, Ambiguous, Does Not Exist Anywhere
_SIP_CONFIGURATION = frozenset({401, 403, 407})  # Unauthorized, Forbidden, Proxy Authentication Required

# Twilio `CallStatus` values of a call that never connected.
_TWILIO_STATUSES = {"busy": "busy", "no-answer": "no_answer", "canceled": "no_answer", "failed": "failed"}


def sip_refusal(code: int | None) -> Refusal | None:
    """A SIP status that blames our trunk configuration or the dialled number (never retried)."""
    if code in _SIP_CONFIGURATION:
        return "configuration"
    if code in _SIP_RECIPIENT:
        return "recipient"
    return None


@dataclass(frozen=True)
class InitiationFailure:
    status: str
    refusal: Refusal | None = None


def initiation_failure(
    failure_reason: str | None, sip_status_code: int | None = None, carrier_call_status: str | None = None
) -> InitiationFailure:
    """`call_initiation_failure` → busy, no_answer or failed (with whom a refusal blames).

    ElevenLabs' `failure_reason` (busy / no-answer) decides when it says; for "unknown" the carrier's
    answer does: Twilio's `CallStatus` (busy, no-answer; canceled = the ringing was given up), then
    the SIP status (Twilio's `SipResponseCode` or the SIP trunk's `sip_status_code`): 486/600/603 busy,
    408/480/487 no answer, 404/410/484/485/604 a number that cannot be called, 401/403/407 our
    configuration; anything else failed.
    """
    reason = (failure_reason or "").strip().lower().replace("_", "-").replace(" ", "-")
    if reason == "busy":
        return InitiationFailure("busy")
    if reason == "no-answer":
        return InitiationFailure("no_answer")
    twilio = _TWILIO_STATUSES.get((carrier_call_status or "").strip().lower())
    if twilio in ("busy", "no_answer"):
        return InitiationFailure(twilio)
    if sip_status_code in _SIP_BUSY:
        return InitiationFailure("busy")
    if sip_status_code in _SIP_NO_ANSWER:
        return InitiationFailure("no_answer")
    return InitiationFailure("failed", sip_refusal(sip_status_code))


def transcription_status(
    conversation_status: str | None, termination_reason: str | None, data_collection: Mapping[str, Any]
) -> str:
    """`post_call_transcription`: voicemail, failed or completed."""
    if _mentions_voicemail(termination_reason) or _mentions_voicemail(data_collection.get("outcome")):
        return "voicemail"
    if (conversation_status or "").lower() == "failed":
        return "failed"
    return "completed"


def _outcome(data_collection: Mapping[str, Any], call_successful: str | None) -> str | None:
    value = data_collection.get("outcome")
    if value is not None:
        return str(value)
    return call_successful


def status_from_webhook(event: PostCallWebhookReceived) -> FinalStatus:
    if event.webhook_type == "call_initiation_failure":
        failure = initiation_failure(event.failure_reason, event.sip_status_code, event.carrier_call_status)
        return FinalStatus(
            status=failure.status,
            duration_seconds=event.call_duration_secs,
            reason=_initiation_reason(event),
            refusal=failure.refusal,
        )
    return FinalStatus(
        status=transcription_status(
            event.conversation_status, event.termination_reason, event.data_collection
        ),
        duration_seconds=event.call_duration_secs,
        outcome=_outcome(event.data_collection, event.call_successful),
        summary=event.transcript_summary,
        reason=event.termination_reason,
        data_collection=dict(event.data_collection),
    )


def _initiation_reason(event: PostCallWebhookReceived) -> str | None:
    """E.g. "unknown (SIP 486)" or "unknown (Twilio busy, SIP 486)": the carrier's answer kept."""
    carrier = [f"Twilio {event.carrier_call_status}"] if event.carrier_call_status else []
    if event.sip_status_code is not None:
        carrier.append(f"SIP {event.sip_status_code}")
    if not carrier:
        return event.failure_reason
    return f"{event.failure_reason or 'unknown'} ({', '.join(carrier)})"


def _failure_from_termination(termination_reason: str | None) -> str:
    """A failed conversation's termination reason, e.g. "Call initiation failed: busy"."""
    text = (termination_reason or "").lower()
    if "busy" in text:
        return "busy"
    if "no-answer" in text or "no answer" in text or "no_answer" in text:
        return "no_answer"
    return "failed"


def status_from_conversation(conversation: Mapping[str, Any]) -> FinalStatus | None:
    """Final status of a `GET /v1/convai/conversations/{id}` answer; None while it is still running."""
    status = str(conversation.get("status") or "")
    if status not in ("done", "failed"):
        return None
    metadata = conversation.get("metadata") or {}
    analysis = conversation.get("analysis") or {}
    results = analysis.get("data_collection_results") or {}
    data_collection = {
        key: value.get("value") if isinstance(value, Mapping) else value for key, value in results.items()
    }
    termination = metadata.get("termination_reason") or None
    duration = metadata.get("call_duration_secs")
    final = transcription_status(status, termination, data_collection)
    refusal: Refusal | None = None
    if final == "failed" and not analysis:
        final = _failure_from_termination(termination)
        if final == "failed":
            # A call that never connected may carry the carrier's SIP answer as `metadata.error.code`.
            failure = initiation_failure(None, _sip_code(metadata.get("error")))
            final, refusal = failure.status, failure.refusal
    return FinalStatus(
        status=final,
        duration_seconds=int(duration) if duration is not None else None,
        outcome=_outcome(data_collection, analysis.get("call_successful")),
        summary=analysis.get("transcript_summary"),
        reason=termination,
        refusal=refusal,
        data_collection=data_collection,
    )


def _sip_code(error: object) -> int | None:
    code = error.get("code") if isinstance(error, Mapping) else None
    return code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 699 else None


def reconcile_decision(
    conversation: Mapping[str, Any] | None, age_s: float, give_up_s: float
) -> FinalStatus | None:
    """What reconciliation does with a non-final call: its final status, or None to look again later."""
    final = status_from_conversation(conversation) if conversation is not None else None
    if final is None and age_s > give_up_s:
        return FinalStatus(status="failed", reason=NO_RESULT_REASON)
    return final


def is_final(status: str) -> bool:
    return status in FINAL_CALL_STATUSES
