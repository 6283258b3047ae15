"""Signature verification, payload mapping and secret encryption (pure functions)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from cryptography.fernet import Fernet

from tool_webhooks import domain
from tool_webhooks.domain import InvalidSignature, MalformedPayload

SECRET = "wsec_test"
NOW = 1_700_000_000
BODY = b'{"type":"post_call_transcription","event_timestamp":1700000000,"data":{}}'


def verify(
    header: str | None, body: bytes = BODY, secrets: list[str] | None = None, now: float = NOW
) -> None:
    domain.verify_signature(
        header,
        body,
        [SECRET] if secrets is None else secrets,
        now=now,
        tolerance_past_s=1800,
        tolerance_future_s=300,
    )


def test_sign_matches_the_simulator_and_verifies() -> None:
    header = domain.sign(SECRET, BODY, NOW)
    # §10: hex(HMAC-SHA256(key=secret, msg="<t>.<raw body>")), computed independently here.
    expected = hmac.new(SECRET.encode(), f"{NOW}.{BODY.decode()}".encode(), hashlib.sha256).hexdigest()
    assert header == f"t={NOW},v0={expected}"
    verify(header)


def test_any_secret_and_any_v0_value_may_match() -> None:
    good = domain.sign(SECRET, BODY, NOW).split("v0=")[1]
    verify(f"t={NOW},v0={'0' * 64},v0={good}", secrets=["other", SECRET])
    verify(f" t={NOW} , v0={good.upper()} ")


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Missing signature header"),
        ("", "Missing signature header"),
        ("garbage", "Malformed signature header: no timestamp"),
        (f"v0={'a' * 64}", "Malformed signature header: no timestamp"),
        (f"t=abc,v0={'a' * 64}", "Malformed signature header: no timestamp"),
        (f"t={NOW}", "No signature hash found with expected scheme v0"),
        (f"t={NOW},v1={'a' * 64}", "No signature hash found with expected scheme v0"),
        (f"t={NOW},v0={'a' * 64}", "Signature hash does not match the expected signature for the payload"),
        (f"t={NOW},v0=é", "Signature hash does not match the expected signature for the payload"),
    ],
)
def test_rejected_headers(header: str | None, detail: str) -> None:
    with pytest.raises(InvalidSignature) as info:
        verify(header)
    assert info.value.detail == detail


def test_wrong_secret_altered_body_and_no_secret_are_rejected() -> None:
    header = domain.sign(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature):
        verify(header, secrets=["not-the-secret"])
    with pytest.raises(InvalidSignature):
        verify(header, body=BODY.replace(b"{}", b'{"x":1}'))
    with pytest.raises(InvalidSignature, match="No webhook secret"):
        verify(header, secrets=[""])


def test_timestamp_tolerance() -> None:
    verify(domain.sign(SECRET, BODY, NOW - 1800))
    verify(domain.sign(SECRET, BODY, NOW + 300))
    for ts in (NOW - 1801, NOW - 31 * 60, NOW + 301, NOW + 600):
        with pytest.raises(InvalidSignature, match="tolerance"):
            verify(domain.sign(SECRET, BODY, ts))


def transcription(**data: object) -> bytes:
    base: dict[str, object] = {
        "agent_id": "agent_1",
        "conversation_id": "conv_1",
        "status": "done",
        "transcript": [{"role": "user", "message": "private"}],
        "metadata": {"call_duration_secs": 42, "termination_reason": "end_call tool was called.", "x": 1},
        "analysis": {
            "call_successful": "success",
            "transcript_summary": "Summary.",
            "data_collection_results": {
                "outcome": {"data_collection_id": "outcome", "value": "booked", "rationale": "r"},
                "count": {"value": 3},
                "broken": "not-a-dict",
            },
        },
        "unknown_field": {"ignored": True},
    }
    base.update(data)
    return json.dumps({"type": "post_call_transcription", "event_timestamp": NOW, "data": base}).encode()


def test_transcription_mapping() -> None:
    event = domain.received_event(domain.parse_envelope(transcription()), correlation_id="c1")
    assert event.model_dump(exclude={"occurred_at"}) == {
        "message_id": domain.post_call_message_id("post_call_transcription", "conv_1"),
        "type": "post_call_webhook.received",
        "version": 1,
        "correlation_id": "c1",
        "causation_id": None,
        "webhook_type": "post_call_transcription",
        "conversation_id": "conv_1",
        "agent_id": "agent_1",
        "event_timestamp": NOW,
        "conversation_status": "done",
        "call_duration_secs": 42,
        "termination_reason": "end_call tool was called.",
        "failure_reason": None,
        "call_successful": "success",
        "transcript_summary": "Summary.",
        "data_collection": {"outcome": "booked", "count": 3, "broken": None},
    }


def test_tolerant_mapping_of_odd_shapes() -> None:
    body = transcription(metadata="nope", analysis=None, status=7)
    event = domain.received_event(domain.parse_envelope(body))
    assert (event.call_duration_secs, event.call_successful, event.conversation_status) == (None, None, None)
    assert event.data_collection == {}


def test_call_initiation_failure_mapping() -> None:
    body = json.dumps(
        {
            "type": "call_initiation_failure",
            "event_timestamp": NOW,
            "data": {
                "agent_id": "agent_1",
                "conversation_id": "conv_2",
                "failure_reason": "busy",
                "metadata": {"type": "sip", "body": {"sip_status_code": 486}},
            },
        }
    ).encode()
    event = domain.received_event(domain.parse_envelope(body))
    assert event.webhook_type == "call_initiation_failure"
    assert (event.conversation_id, event.failure_reason, event.termination_reason) == ("conv_2", "busy", None)
    assert event.message_id == domain.post_call_message_id("call_initiation_failure", "conv_2")
    assert event.message_id != domain.post_call_message_id("post_call_transcription", "conv_2")
    assert len(event.message_id) == 32


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1,2]",
        b'{"data": {}}',
        b'{"type": "post_call_transcription", "event_timestamp": 1, "data": {}}',
        b'{"type": "post_call_transcription", "data": {"conversation_id": "c"}}',
    ],
)
def test_malformed_payloads(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        domain.received_event(domain.parse_envelope(body))


def test_webhook_url_and_settings() -> None:
    assert (
        domain.post_call_webhook_url("https://sb.example/api/v1/")
        == "https://sb.example/api/v1/webhook/elevenlabs/post-call"
    )
    with pytest.raises(domain.CommandError):
        domain.post_call_webhook_url("not a url")
    assert domain.convai_webhook_settings("wh_1") == {
        "webhooks": {
            "post_call_webhook_id": "wh_1",
            "events": ["transcript", "call_initiation_failure"],
            "transcript_format": "json",
        }
    }


@pytest.mark.parametrize("key", [Fernet.generate_key().decode(), "a passphrase, not a Fernet key"])
def test_secret_round_trip(key: str) -> None:
    token = domain.encrypt_secret(key, "wsec_clear")
    assert "wsec_clear" not in token
    assert domain.decrypt_secret(key, token) == "wsec_clear"
    assert domain.decrypt_secret("another key", token) is None


def test_fernet_key_is_used_as_is() -> None:
    key = Fernet.generate_key()
    assert Fernet(key).decrypt(domain.encrypt_secret(key.decode(), "s").encode()) == b"s"
