"""Status mapping and ElevenLabs payloads: pure functions, no I/O."""

from __future__ import annotations

import pytest

from contracts.telephony import (
    ImportSipTrunkNumber,
    ImportTwilioNumber,
    PlaceCall,
    SipCredentials,
    TrunkConfig,
    UpdatePhoneNumber,
)
from contracts.webhooks import PostCallWebhookReceived
from telephony import domain


def _decrypt(token: str, field: str) -> str:
    return f"plain({token})"


def _webhook(**fields) -> PostCallWebhookReceived:
    defaults = {"webhook_type": "post_call_transcription", "conversation_id": "conv_1", "event_timestamp": 1}
    return PostCallWebhookReceived(**(defaults | fields))


# ---- payloads -----------------------------------------------------------------------------------


def test_twilio_import_body_decrypts_the_token() -> None:
    command = ImportTwilioNumber(phone_number="+15550001", label="Main", sid="AC1", token_encrypted="ct")
    assert domain.twilio_import_body(command, _decrypt) == {
        "provider": "twilio",
        "phone_number": "+15550001",
        "label": "Main",
        "sid": "AC1",
        "token": "plain(ct)",
    }


def test_sip_import_body_decrypts_passwords_and_drops_none() -> None:
    command = ImportSipTrunkNumber(
        phone_number="+15550002",
        label="SIP",
        supports_inbound=False,
        outbound_trunk_config=TrunkConfig(
            address="sip.example.com",
            transport="tls",
            credentials=SipCredentials(username="alice", password_encrypted="pw-ct"),
        ),
    )
    assert domain.sip_import_body(command, _decrypt) == {
        "provider": "sip_trunk",
        "phone_number": "+15550002",
        "label": "SIP",
        "supports_inbound": False,
        "supports_outbound": True,
        "outbound_trunk_config": {
            "address": "sip.example.com",
            "transport": "tls",
            "credentials": {"username": "alice", "password": "plain(pw-ct)"},
        },
    }


def test_sip_credentials_without_password_send_only_the_username() -> None:
    config = TrunkConfig(credentials=SipCredentials(username="bob"))
    assert domain.trunk_body(config, _decrypt, inbound=True) == {"credentials": {"username": "bob"}}


def test_patch_body_has_only_present_fields() -> None:
    assert domain.phone_patch_body(UpdatePhoneNumber(phone_number_id="p", label="x")) == {"label": "x"}
    assert domain.phone_patch_body(UpdatePhoneNumber(phone_number_id="p", agent_id="a")) == {"agent_id": "a"}


def test_phone_record_takes_agent_and_sip_username_and_no_secrets() -> None:
    record = domain.phone_record(
        {
            "phone_number_id": "phnum_1",
            "phone_number": "+15550002",
            "label": "SIP",
            "provider": "sip_trunk",
            "assigned_agent": {"agent_id": "agent_1"},
            "supports_inbound": False,
            "supports_outbound": True,
            "outbound_trunk": {"username": "alice", "has_auth_credentials": True},
        },
        123,
    )
    assert record.agent_id == "agent_1"
    assert record.sip_username == "alice"
    assert (record.provider, record.supports_inbound, record.created_at_unix) == ("sip_trunk", False, 123)


def test_call_body_adds_attempt_id_and_first_message() -> None:
    command = PlaceCall(
        provider="twilio",
        agent_id="agent_1",
        agent_phone_number_id="phnum_1",
        to_number="+15551230",
        first_message="Hi {{name}}",
        dynamic_variables={"name": "Ana"},
    )
    assert domain.call_body(command) == {
        "agent_id": "agent_1",
        "agent_phone_number_id": "phnum_1",
        "to_number": "+15551230",
        "conversation_initiation_client_data": {
            "dynamic_variables": {"name": "Ana", "switchboard_attempt_id": command.message_id},
            "user_id": f"switchboard-attempt-{command.message_id}",
            "conversation_config_override": {"agent": {"first_message": "Hi {{name}}"}},
        },
    }


def test_call_body_without_first_message_has_no_override() -> None:
    command = PlaceCall(provider="sip_trunk", agent_id="a", agent_phone_number_id="p", to_number="+1555")
    client_data = domain.call_body(command)["conversation_initiation_client_data"]
    assert client_data == {
        "dynamic_variables": {"switchboard_attempt_id": command.message_id},
        "user_id": f"switchboard-attempt-{command.message_id}",
    }


def test_dial_result_reads_camel_case_call_sid_and_refusals() -> None:
    twilio = domain.dial_result({"success": True, "conversation_id": "c1", "callSid": "CA1"})
    assert (twilio.conversation_id, twilio.call_sid, twilio.sip_call_id) == ("c1", "CA1", None)
    sip = domain.dial_result({"success": True, "conversation_id": "c2", "sip_call_id": "s1"})
    assert (sip.call_sid, sip.sip_call_id) == (None, "s1")
    with pytest.raises(domain.CommandError) as refused:
        domain.dial_result({"success": False, "message": "nope", "conversation_id": None, "callSid": None})
    assert (refused.value.status_code, refused.value.error, refused.value.detail) == (
        502,
        "Call could not be placed",
        "nope",
    )


# Refused dials as ElevenLabs answers them: Twilio's REST error passed on in `message`.
_CONFIGURATION_REFUSALS = [
    "HTTP 401 error: Unable to create record: Authenticate",  # the example: bad Twilio credentials
    "HTTP 400 error: Unable to create record: The number +15550001111 is unverified. Trial accounts "
    "cannot call unverified numbers; verify +15550001111 at twilio.com/user/account/phone-numbers/verified",
    "HTTP 400 error: Unable to create record: Account not authorized to call +8821234567. Perhaps you need "
    "to enable some international permissions: https://www.twilio.com/console/voice/calls/geo-permissions",
    "Twilio error 21219: 'To' number not verified",
    "Twilio error 21215: Geo Permission configuration is not permitting call",
    "Twilio error 21212: Invalid 'From' Number",
    "Failed to create SIP participant: sip status 403 Forbidden",
    "SIP call failed with status code 407",
]
_RECIPIENT_REFUSALS = [
    "HTTP 400 error: Unable to create record: The 'To' number +1555000 is not a valid phone number.",
    "HTTP 400 error: Unable to create record: Invalid 'To' Phone Number: +1555000",
    "Twilio error 21211",
    "Error 13224: Twilio does not support calling this number or the number is invalid",
    "Twilio error 21214: 'To' phone number cannot be reached",
    "Failed to create SIP participant: sip status 404 Not Found",
    "SIP status code 484 Address Incomplete",
    "SIP 604 Does Not Exist Anywhere",
]
_UNCLASSIFIED_REFUSALS = [
    "nope",
    "",
    "Internal error while placing the call",
    "HTTP 500 error: Unable to create record: Internal Server Error",
    "Failed to create SIP participant: sip status 503 Service Unavailable",
    # A 5-digit run inside a phone number is not a Twilio error code.
    "Failed to initiate call to +1212115550000: the number cannot be dialled",
]


@pytest.mark.parametrize("message", _CONFIGURATION_REFUSALS)
def test_refusals_that_blame_our_configuration_are_a_client_error(message: str) -> None:
    assert domain.carrier_refusal(message) == "configuration"
    with pytest.raises(domain.CommandError) as refused:
        domain.dial_result({"success": False, "message": message, "conversation_id": None, "callSid": None})
    assert (refused.value.status_code, refused.value.error) == (422, "Carrier refused the call")
    assert (refused.value.detail, refused.value.refusal) == (message, "configuration")


@pytest.mark.parametrize("message", _RECIPIENT_REFUSALS)
def test_refusals_that_blame_the_number_are_the_recipients(message: str) -> None:
    assert domain.carrier_refusal(message) == "recipient"
    with pytest.raises(domain.CommandError) as refused:
        domain.dial_result(
            {"success": False, "message": message, "conversation_id": None, "sip_call_id": None}
        )
    assert (refused.value.status_code, refused.value.error) == (422, "Carrier refused the number")
    assert (refused.value.detail, refused.value.refusal) == (message, "recipient")


@pytest.mark.parametrize("message", _UNCLASSIFIED_REFUSALS)
def test_refusals_we_cannot_attribute_stay_a_bad_gateway(message: str) -> None:
    assert domain.carrier_refusal(message) is None
    with pytest.raises(domain.CommandError) as refused:
        domain.dial_result({"success": False, "message": message, "conversation_id": None, "callSid": None})
    assert (refused.value.status_code, refused.value.refusal) == (502, None)


def test_attempt_id_and_adoption_from_a_conversation() -> None:
    conversation = {
        "conversation_id": "c1",
        "conversation_initiation_client_data": {"dynamic_variables": {"switchboard_attempt_id": "m1"}},
        "metadata": {"phone_call": {"type": "sip_trunking", "call_id": "sip-1", "call_sid": "x"}},
    }
    assert domain.attempt_id_of(conversation) == "m1"
    assert domain.adopted(conversation) == domain.Dialled("c1", None, "sip-1")
    assert domain.attempt_id_of({"conversation_id": "c2"}) is None


def test_retry_after_is_read_from_the_client_detail() -> None:
    assert domain.retry_after_from_detail("Retry after 3 seconds") == 3.0
    assert domain.retry_after_from_detail("system_busy: try later. Retry after 2 seconds") == 2.0
    assert domain.retry_after_from_detail(None) is None


# ---- status mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure_reason", "status"),
    [("busy", "busy"), ("no-answer", "no_answer"), ("unknown", "failed"), (None, "failed")],
)
def test_call_initiation_failure(failure_reason: str | None, status: str) -> None:
    final = domain.status_from_webhook(
        _webhook(webhook_type="call_initiation_failure", failure_reason=failure_reason)
    )
    assert final.status == status
    assert final.reason == failure_reason
    assert final.refusal is None


@pytest.mark.parametrize(
    ("carrier", "sip", "call_status", "status", "refusal", "reason"),
    [
        # The example: SIP 486 Busy Here behind failure_reason "unknown".
        ("sip", 486, None, "busy", None, "unknown (SIP 486)"),
        ("sip", 600, None, "busy", None, "unknown (SIP 600)"),
        ("sip", 603, None, "busy", None, "unknown (SIP 603)"),
        ("sip", 480, None, "no_answer", None, "unknown (SIP 480)"),
        ("sip", 408, None, "no_answer", None, "unknown (SIP 408)"),
        ("sip", 487, None, "no_answer", None, "unknown (SIP 487)"),
        ("sip", 404, None, "failed", "recipient", "unknown (SIP 404)"),
        ("sip", 484, None, "failed", "recipient", "unknown (SIP 484)"),
        ("sip", 410, None, "failed", "recipient", "unknown (SIP 410)"),
        ("sip", 604, None, "failed", "recipient", "unknown (SIP 604)"),
        ("sip", 401, None, "failed", "configuration", "unknown (SIP 401)"),
        ("sip", 403, None, "failed", "configuration", "unknown (SIP 403)"),
        ("sip", 407, None, "failed", "configuration", "unknown (SIP 407)"),
        ("sip", 500, None, "failed", None, "unknown (SIP 500)"),
        ("sip", 503, None, "failed", None, "unknown (SIP 503)"),
        ("twilio", None, "busy", "busy", None, "unknown (Twilio busy)"),
        ("twilio", None, "no-answer", "no_answer", None, "unknown (Twilio no-answer)"),
        ("twilio", None, "canceled", "no_answer", None, "unknown (Twilio canceled)"),
        ("twilio", 486, "failed", "busy", None, "unknown (Twilio failed, SIP 486)"),
        ("twilio", 404, "failed", "failed", "recipient", "unknown (Twilio failed, SIP 404)"),
        ("twilio", 403, "failed", "failed", "configuration", "unknown (Twilio failed, SIP 403)"),
        ("twilio", None, "failed", "failed", None, "unknown (Twilio failed)"),
    ],
)
def test_call_initiation_failure_follows_the_carrier(
    carrier: str, sip: int | None, call_status: str | None, status: str, refusal: str | None, reason: str
) -> None:
    final = domain.status_from_webhook(
        _webhook(
            webhook_type="call_initiation_failure",
            failure_reason="unknown",
            carrier=carrier,
            sip_status_code=sip,
            carrier_call_status=call_status,
        )
    )
    assert (final.status, final.refusal, final.reason) == (status, refusal, reason)


def test_elevenlabs_failure_reason_wins_over_the_carrier_code() -> None:
    final = domain.status_from_webhook(
        _webhook(
            webhook_type="call_initiation_failure",
            failure_reason="no-answer",
            carrier="sip",
            sip_status_code=486,
        )
    )
    assert (final.status, final.refusal) == ("no_answer", None)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"conversation_status": "done", "termination_reason": "end_call tool was called."}, "completed"),
        ({"conversation_status": "done", "termination_reason": "VoiceMail_detected"}, "voicemail"),
        ({"conversation_status": "done", "data_collection": {"outcome": "Reached voicemail"}}, "voicemail"),
        ({"conversation_status": "failed"}, "failed"),
        ({"conversation_status": "failed", "termination_reason": "voicemail"}, "voicemail"),
    ],
)
def test_post_call_transcription(fields: dict, status: str) -> None:
    assert domain.status_from_webhook(_webhook(**fields)).status == status


def test_transcription_result_fields() -> None:
    final = domain.status_from_webhook(
        _webhook(
            conversation_status="done",
            call_duration_secs=42,
            call_successful="success",
            transcript_summary="Agreed.",
            termination_reason="end_call tool was called.",
            data_collection={"outcome": 7},
        )
    )
    assert final == domain.FinalStatus("completed", 42, "7", "Agreed.", "end_call tool was called.")
    fallback = domain.status_from_webhook(_webhook(call_successful="failure"))
    assert fallback.outcome == "failure"


def _conversation(status: str, termination: str = "", analysis: dict | None = None) -> dict:
    return {
        "status": status,
        "metadata": {"termination_reason": termination, "call_duration_secs": 12},
        "analysis": analysis,
    }


def test_conversation_status_mapping() -> None:
    assert domain.status_from_conversation(_conversation("in-progress")) is None
    assert domain.status_from_conversation(_conversation("processing")) is None
    done = domain.status_from_conversation(
        _conversation(
            "done",
            "end_call tool was called.",
            {
                "call_successful": "success",
                "transcript_summary": "Fine.",
                "data_collection_results": {"outcome": {"value": "interested"}},
            },
        )
    )
    assert done == domain.FinalStatus("completed", 12, "interested", "Fine.", "end_call tool was called.")
    voicemail = domain.status_from_conversation(
        _conversation("done", "voicemail_detected", {"call_successful": "failure"})
    )
    assert voicemail is not None and voicemail.status == "voicemail"
    for termination, status in [
        ("Call initiation failed: busy", "busy"),
        ("Call initiation failed: no-answer", "no_answer"),
        ("Call initiation failed: unknown", "failed"),
    ]:
        final = domain.status_from_conversation(_conversation("failed", termination))
        assert final is not None and final.status == status


@pytest.mark.parametrize(
    ("error", "status", "refusal"),
    [
        ({"code": 486, "reason": "Busy Here"}, "busy", None),
        ({"code": 480, "reason": "Temporarily Unavailable"}, "no_answer", None),
        ({"code": 404, "reason": "Not Found"}, "failed", "recipient"),
        ({"code": 403, "reason": "Forbidden"}, "failed", "configuration"),
        ({"code": 500, "reason": "Server Internal Error"}, "failed", None),
        ({"code": 1008, "reason": "Missing required dynamic variables"}, "failed", None),
        (None, "failed", None),
    ],
)
def test_reconciliation_reads_the_carriers_answer_of_a_call_that_never_connected(
    error: dict | None, status: str, refusal: str | None
) -> None:
    conversation = _conversation("failed", "Call initiation failed: unknown")
    conversation["metadata"]["error"] = error
    final = domain.status_from_conversation(conversation)
    assert final is not None and (final.status, final.refusal) == (status, refusal)


def test_reconcile_decision_gives_up_only_after_the_limit() -> None:
    running = _conversation("in-progress")
    assert domain.reconcile_decision(running, age_s=100, give_up_s=7200) is None
    gave_up = domain.reconcile_decision(running, age_s=7201, give_up_s=7200)
    assert gave_up == domain.FinalStatus("failed", reason="no result from ElevenLabs")
    assert domain.reconcile_decision(None, age_s=7201, give_up_s=7200) == gave_up
    finished = domain.reconcile_decision(_conversation("failed", "busy"), age_s=1, give_up_s=7200)
    assert finished is not None and finished.status == "busy"


def test_secrets_are_found_and_redacted() -> None:
    body = {
        "token": "tok",
        "outbound_trunk_config": {"credentials": {"username": "u", "password": "pw"}},
        "inbound_trunk_config": {"credentials": {"username": "u"}},
    }
    assert sorted(domain.secrets_in(body)) == ["pw", "tok"]
    assert domain.redact('{"input": "pw", "x": "tok"}', ["pw", "tok"]) == '{"input": "***", "x": "***"}'
    assert domain.redact(None, ["pw"]) is None


def test_the_analysis_values_travel_with_the_final_status() -> None:
    final = domain.status_from_conversation(
        {
            "status": "done",
            "metadata": {"call_duration_secs": 30},
            "analysis": {
                "data_collection_results": {"outcome": {"value": "call_back_later"}, "n": {"value": 2}}
            },
        }
    )
    assert final is not None and final.data_collection == {"outcome": "call_back_later", "n": 2}
