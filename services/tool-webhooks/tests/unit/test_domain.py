"""Signature verification, payload mapping and secret encryption (pure functions)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

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
            "evaluation_criteria_results": {
                "goal": {"criteria_id": "goal", "result": "success", "rationale": "Booked."},
                "polite": {"criteria_id": "polite", "result": "unknown"},
                "odd": 5,
            },
        },
        "unknown_field": {"ignored": True},
    }
    base.update(data)
    return json.dumps({"type": "post_call_transcription", "event_timestamp": NOW, "data": base}).encode()


def test_a_nul_in_the_webhooks_text_is_kept_as_a_replacement_character() -> None:
    # PostgreSQL cannot store U+0000: the call's outcome and transcript must still be recorded.
    body = transcription(
        transcript=[{"role": "user", "message": "he\u0000llo"}],
        analysis={"transcript_summary": "S\u0000", "data_collection_results": {"k": {"value": "v\u0000"}}},
    )
    assert b"\\u0000" in body  # as JSON carries it: an escape
    envelope = domain.parse_envelope(body)
    assert "\x00" not in json.dumps(envelope.data, ensure_ascii=False)
    assert envelope.data["transcript"][0]["message"] == "he\ufffdllo"
    assert envelope.data["analysis"]["transcript_summary"] == "S\ufffd"


def test_transcription_mapping() -> None:
    event = domain.received_event(
        domain.parse_envelope(transcription()), received_at=NOW + 5, correlation_id="c1"
    )
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
        "carrier": None,
        "sip_status_code": None,
        "carrier_call_status": None,
        "call_successful": "success",
        "transcript_summary": "Summary.",
        "data_collection": {"outcome": "booked", "count": 3, "broken": None},
        "evaluation_criteria": {
            "goal": {"result": "success", "rationale": "Booked."},
            "polite": {"result": "unknown", "rationale": None},
            "odd": None,
        },
    }


def test_tolerant_mapping_of_odd_shapes() -> None:
    body = transcription(metadata="nope", analysis=None, status=7)
    event = domain.received_event(domain.parse_envelope(body), received_at=NOW)
    assert (event.call_duration_secs, event.call_successful, event.conversation_status) == (None, None, None)
    assert event.data_collection == {}
    assert event.evaluation_criteria == {}


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
    event = domain.received_event(domain.parse_envelope(body), received_at=NOW)
    assert event.webhook_type == "call_initiation_failure"
    assert (event.conversation_id, event.failure_reason, event.termination_reason) == ("conv_2", "busy", None)
    assert event.message_id == domain.post_call_message_id("call_initiation_failure", "conv_2")
    assert event.message_id != domain.post_call_message_id("post_call_transcription", "conv_2")
    assert len(event.message_id) == 32
    assert (event.carrier, event.sip_status_code, event.carrier_call_status) == ("sip", 486, None)


def _initiation_failure(metadata: object) -> bytes:
    data = {"agent_id": "a", "conversation_id": "c", "failure_reason": "unknown", "metadata": metadata}
    return json.dumps({"type": "call_initiation_failure", "event_timestamp": NOW, "data": data}).encode()


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        # Twilio status-callback form fields are strings.
        (
            {
                "type": "twilio",
                "body": {"CallStatus": "busy", "SipResponseCode": "486", "To": "+15550001111"},
            },
            ("twilio", 486, "busy"),
        ),
        ({"type": "twilio", "body": {"CallStatus": "no-answer"}}, ("twilio", None, "no-answer")),
        ({"type": "sip", "body": {"sip_status_code": 404, "error_reason": "Not Found"}}, ("sip", 404, None)),
        ({"type": "sip", "body": {"sip_status_code": "603"}}, ("sip", 603, None)),
        ({"type": "sip", "body": {"sip_status_code": "abc"}}, ("sip", None, None)),
        ({"type": "exotel", "body": {}}, (None, None, None)),
        ("not a dict", (None, None, None)),
    ],
)
def test_carrier_answer_of_initiation_failures(metadata: object, expected: tuple[object, ...]) -> None:
    event = domain.received_event(domain.parse_envelope(_initiation_failure(metadata)), received_at=NOW)
    assert (event.carrier, event.sip_status_code, event.carrier_call_status) == expected
    assert "+15550001111" not in event.model_dump_json()  # the bodies' phone numbers are not kept


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1,2]",
        b'{"data": {}}',
        b'{"type": "post_call_transcription", "event_timestamp": 1, "data": {}}',
        b'{"type": "post_call_transcription", "data": {"conversation_id": 7}}',
        # Signed but longer than any service stores: kept, not published to fail every consumer.
        b'{"type": "post_call_transcription", "data": {"conversation_id": "' + b"c" * 201 + b'"}}',
        b'{"type": "call_initiation_failure", "data": {"conversation_id": "' + b"c" * 201 + b'"}}',
    ],
)
def test_malformed_payloads(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        domain.received_event(domain.parse_envelope(body), received_at=NOW)


def test_ids_up_to_200_characters_and_known_call_successful_values_are_published() -> None:
    longest = "c" * 200
    for value, kept in (("success", "success"), ("unknown", "unknown"), ("x" * 21, None)):
        body = {
            "type": "post_call_transcription",
            "data": {"conversation_id": longest, "analysis": {"call_successful": value}},
        }
        event = domain.received_event(domain.parse_envelope(json.dumps(body).encode()), received_at=NOW)
        assert (event.conversation_id, event.call_successful) == (longest, kept)


def test_a_delivery_without_event_timestamp_is_dated_at_receipt() -> None:
    for kind in ("post_call_transcription", "call_initiation_failure"):
        body = json.dumps({"type": kind, "data": {"conversation_id": "c"}}).encode()
        event = domain.received_event(domain.parse_envelope(body), received_at=NOW + 42)
        assert (event.webhook_type, event.event_timestamp) == (kind, NOW + 42)
    dated = json.dumps(
        {"type": "call_initiation_failure", "event_timestamp": 5, "data": {"conversation_id": "c"}}
    )
    assert domain.received_event(domain.parse_envelope(dated.encode()), received_at=NOW).event_timestamp == 5


def _chunked(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096, 10**9])
def test_skim_leaves_out_long_strings_whatever_the_chunking(chunk: int) -> None:
    value = {
        "type": "post_call_audio",
        "event_timestamp": NOW,
        "data": {
            "agent_id": 'quote " and backslash \\ and é and \u2028',
            "conversation_id": "conv_1",
            "full_audio": "SUQzBAAAAAAA" * 100_000,
            "escaped_long": '\\"' * 5000,
            "nested": [{"k": ["\n", 1.5, None, True]}],
        },
    }
    body = json.dumps(value).encode()
    skimmed = domain.skim(_chunked(body, chunk), max_bytes=10_000)
    expected = json.loads(body)
    expected["data"]["full_audio"] = expected["data"]["escaped_long"] = None
    assert json.loads(skimmed) == expected
    # Non-ASCII as raw UTF-8 (not escaped) survives too.
    raw = json.dumps({"type": "x", "data": {"m": "héllo ✓"}}, ensure_ascii=False).encode()
    assert json.loads(domain.skim(_chunked(raw, chunk), max_bytes=100)) == json.loads(raw)


def test_skim_is_bounded_and_keeps_garbage_unparseable() -> None:
    with pytest.raises(domain.TooLargeToSkim):
        domain.skim([b"[" + b"1," * 10_000 + b"1]"], max_bytes=1000)
    for garbage in (b"{not json", b'{"type": "unterminated', b"\xff\xfe"):
        with pytest.raises(MalformedPayload):
            domain.parse_envelope(domain.skim([garbage], max_bytes=1000))


def test_transcript_turns_keep_role_message_and_time_only() -> None:
    data = {
        "transcript": [
            {"role": "agent", "message": "Hi", "time_in_call_secs": 0, "tool_calls": [{"x": 1}]},
            {"role": "user", "message": None, "time_in_call_secs": 1.5, "llm_usage": {}},
            "not a turn",
            {"role": "user", "message": "lone \ud83d surrogate", "time_in_call_secs": True},
        ]
    }
    turns = domain.transcript_turns(json.loads(json.dumps(data)))
    assert turns == [
        {"role": "agent", "message": "Hi", "time_in_call_secs": 0},
        {"role": "user", "message": None, "time_in_call_secs": 1.5},
        {"role": "user", "message": "lone ? surrogate", "time_in_call_secs": None},
    ]


@pytest.mark.parametrize(
    "message",
    ["plain ascii words " * 40, 'quotes " and \\ backslashes', "\x01\x02 control " * 30, "émoji 🎉 ✓ " * 50],
)
def test_transcript_slices_fit_the_budget_and_join_back(message: str) -> None:
    turns = [{"role": "user", "message": f"{i}: {message}", "time_in_call_secs": i} for i in range(300)]
    budget = 4096
    slices = domain.transcript_slices(turns, budget)
    assert len(slices) > 1
    assert all(len(json.dumps(s, ensure_ascii=False).encode()) <= budget for s in slices)
    assert json.loads("".join(slices)) == turns


def test_transcript_parts_are_numbered_events_with_stable_ids() -> None:
    turns = [{"role": "user", "message": "x" * 1000, "time_in_call_secs": i} for i in range(1000)]
    body = json.dumps(
        {"type": "post_call_transcription", "data": {"conversation_id": "conv_9", "transcript": turns}}
    )
    parts = domain.transcript_parts(domain.parse_envelope(body.encode()))
    assert [p.part_index for p in parts] == list(range(len(parts)))
    assert {p.part_count for p in parts} == {len(parts)} and len(parts) >= 4
    assert {p.turn_count for p in parts} == {1000}
    assert all(len(p.model_dump_json().encode()) < domain.TRANSCRIPT_PART_BYTES + 1024 for p in parts)
    assert json.loads("".join(p.transcript_json for p in parts)) == turns
    assert parts[1].message_id == domain.transcript_part_message_id("conv_9", 1) != parts[0].message_id
    failure = json.dumps({"type": "call_initiation_failure", "data": {"conversation_id": "c"}})
    assert domain.transcript_parts(domain.parse_envelope(failure.encode())) == []


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


def test_transcript_parts_shrink_with_the_bus_limit() -> None:
    assert domain.transcript_part_bytes(1_000_000) == domain.TRANSCRIPT_PART_BYTES
    assert domain.transcript_part_bytes(100_000) == 100_000 - 8 * 1024
    turns = [{"role": "user", "message": "x" * 1000, "time_in_call_secs": i} for i in range(300)]
    body = json.dumps(
        {"type": "post_call_transcription", "data": {"conversation_id": "c", "transcript": turns}}
    )
    parts = domain.transcript_parts(domain.parse_envelope(body.encode()), max_part_bytes=50_000)
    assert len(parts) >= 6
    assert all(len(p.model_dump_json().encode()) < 50_000 + 1024 for p in parts)
