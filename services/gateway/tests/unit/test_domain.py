"""The gateway's rules without I/O (`gateway.domain`): phone checks, cursors, upload sniffing and
the mapping of outcome events to what an API caller sees."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

import pytest

from bus.secrets import Keyring, Undecryptable, message_context, new_key
from contracts.base import CommandFailed
from contracts.campaigns import (
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignUpdated,
)
from contracts.telephony import (
    CallDialFailed,
    CallPlaced,
    CallStatusChanged,
    CustomerInfo,
    CustomerSessionStored,
    PhoneNumberDeleted,
)
from contracts.webhooks import PostCallTranscriptPart, PostCallWebhookReceived, PostCallWebhookRegistered
from gateway.domain import (
    MAX_POSITION,
    concludes,
    decode_cursor,
    detect_upload_type,
    e164,
    ecommerce_fields,
    encode_cursor,
    may_conclude,
    outcome_of,
    retry_after_s,
)
from gateway.errors import BadRequest, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from gateway.schemas import ShopifyCredentials

# ---- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["+14155550103", "+442079460958", "+61892001234"])
def test_valid_e164_numbers_pass_unchanged(number: str) -> None:
    assert e164(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "4155550103",  # national format: no country code
        "(415) 555-0103",
        "+1 415 555 0103",  # spaces are formatting, not E.164
        " +14155550103",  # surrounding whitespace is not silently trimmed
        "+14155550103\n",
        "+1415555010",  # too short for the plan
        "+999123456789",  # no such country code
        "1.41555501E+10",  # a spreadsheet's scientific notation
        "",
    ],
)
def test_anything_but_strict_e164_is_the_specs_422(number: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        e164(number)
    assert caught.value.status_code == 422
    assert repr(number) in str(caught.value.detail)


# ---- cursors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1, 30, 10**12, MAX_POSITION])
def test_a_cursor_round_trips_its_position(position: int) -> None:
    cursor = encode_cursor(position)
    assert "=" not in cursor  # padding stripped: safe in a query string as is
    assert decode_cursor(cursor) == position


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_means_the_first_page(cursor: str | None) -> None:
    assert decode_cursor(cursor) is None


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        _b64("-1"),  # not plain digits
        _b64("12abc"),
        _b64("١٢"),  # Arabic-Indic digits: isdigit() but not ASCII
        _b64(str(MAX_POSITION + 1)),  # beyond a PostgreSQL bigint
        "A" * 33,  # longer than any cursor we make
        _b64("' OR 1=1 --"),
    ],
)
def test_a_cursor_we_did_not_make_is_a_400_not_a_database_error(cursor: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_cursor(cursor)
    assert caught.value.status_code == 400
    assert caught.value.error == "Invalid cursor"


# ---- knowledge-base uploads ------------------------------------------------------------------

_PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def _docx(*, with_document: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        if with_document:
            archive.writestr("word/document.xml", "<w:document>Opening hours 9-6</w:document>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "mime"),
    [
        ("faq.pdf", _PDF, "application/pdf"),
        ("FAQ.PDF", _PDF, "application/pdf"),  # extensions compare case-insensitively
        ("notes.txt", "Öffnungszeiten 9\u201318 Uhr".encode(), "text/plain"),
        ("notes.md", b"# Hours\n9-6", "text/markdown"),
        (
            "policy.docx",
            _docx(),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ],
)
def test_an_upload_is_typed_by_its_content_agreeing_with_its_name(
    name: str, content: bytes, mime: str
) -> None:
    assert detect_upload_type(name, content, max_bytes=1024 * 1024) == mime


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("report.pdf", b"%PDF-1.7\n1 0 obj <<>> endobj\n"),  # cut off: no end-of-file marker
        ("report.pdf", b"MZ\x90\x00 an executable renamed"),
        ("notes.txt", b"text with a \x00 byte"),
        ("notes.txt", "latin-1 caf\xe9".encode("latin-1")),  # not UTF-8
        ("policy.docx", _docx(with_document=False)),  # a zip, but not a Word document
        ("policy.docx", b"PK\x03\x04 a truncated archive"),
        ("policy.docx", _PDF),
    ],
)
def test_content_that_is_not_what_its_name_says_is_a_415(name: str, content: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        detect_upload_type(name, content, max_bytes=1024 * 1024)
    assert caught.value.status_code == 415
    assert "not a valid" in str(caught.value.detail)


@pytest.mark.parametrize("name", ["script.exe", "archive.zip", "no_extension", "page.html"])
def test_a_type_outside_the_allowed_four_is_a_415_naming_them(name: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        detect_upload_type(name, b"anything", max_bytes=1024)
    assert caught.value.detail == "Supported types: PDF, TXT, MD, DOCX"


def test_an_empty_upload_is_a_400_and_an_oversized_one_a_413_before_any_sniffing() -> None:
    with pytest.raises(BadRequest):
        detect_upload_type("notes.txt", b"", max_bytes=1024)
    with pytest.raises(PayloadTooLarge) as caught:
        detect_upload_type("script.exe", b"x" * (2 * 1024 * 1024 + 1), max_bytes=2 * 1024 * 1024)
    assert caught.value.detail == "Maximum size is 2 MB"


# ---- outcome events → HTTP responses ---------------------------------------------------------


def test_a_failed_command_answers_its_own_status_and_error_in_the_contracts_format() -> None:
    with_detail = outcome_of(
        CommandFailed(command_type="agent.create", status_code=404, error="Agent not found", detail="agent_1")
    )
    assert (with_detail.status_code, with_detail.succeeded) == (404, False)
    assert with_detail.body == {"success": False, "error": "Agent not found", "detail": "agent_1"}
    without = outcome_of(CommandFailed(command_type="agent.create", status_code=502, error="Upstream failed"))
    assert without.body == {"success": False, "error": "Upstream failed", "detail": "Bad Gateway"}


def _dial(**fields: Any) -> dict[str, Any]:
    return {
        "provider": "twilio",
        "agent_id": "agent_1",
        "phone_number_id": "pn_1",
        "to_number": "+14155550103",
    } | fields


def test_a_refused_dial_answers_the_carriers_status() -> None:
    refused = outcome_of(
        CallDialFailed(**_dial(status_code=429, error="Too many calls", detail="Retry after 8 seconds"))
    )
    assert refused.status_code == 429
    assert refused.body == {"success": False, "error": "Too many calls", "detail": "Retry after 8 seconds"}
    assert retry_after_s(refused.body) == 8


def test_a_placed_call_answers_the_spec_shape_of_its_route() -> None:
    twilio = outcome_of(CallPlaced(**_dial(conversation_id="conv_1", call_sid="CA1", placed_at_unix=1)))
    assert twilio.body == {
        "success": True,
        "message": "Call initiated",
        "conversation_id": "conv_1",
        "call_sid": "CA1",
        "ecommerce_enabled": False,
    }
    sip = outcome_of(
        CallPlaced(
            **_dial(provider="sip_trunk", conversation_id="conv_2", sip_call_id="sip-1", placed_at_unix=1)
        )
    )
    assert sip.body == {
        "success": True,
        "message": "SIP call initiated",
        "conversation_id": "conv_2",
        "sip_call_id": "sip-1",
    }


def test_a_deletion_answers_the_specs_message() -> None:
    deleted = outcome_of(PhoneNumberDeleted(phone_number_id="pn_9"))
    assert deleted.body == {"success": True, "message": "Phone number pn_9 deleted successfully"}


@pytest.mark.parametrize(
    ("detail", "seconds"),
    [
        ("Retry after 3 seconds", 3),
        ("Retry after 2.5 seconds", 3),
        ("Retry after 0 seconds", 1),
        (None, 1),
        ("busy", 1),
    ],
)
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(detail: str | None, seconds: int) -> None:
    assert retry_after_s({"detail": detail}) == seconds


def test_a_side_effect_event_does_not_conclude_another_command() -> None:
    # A placed call stores a customer session too; that event answers only a session request.
    assert concludes("customer_session.stored", "customer_session.store")
    assert not concludes("customer_session.stored", "call.place")
    assert concludes("agent.created", "agent.create")


_CAMPAIGN_CALL = {"campaign_id": "batch_1", "recipient_id": "r1", "attempt": 1}


@pytest.mark.parametrize(
    ("event", "may"),
    [
        # A campaign call's events: no operation lookup for any of them.
        (
            CampaignRecipientUpdated(
                campaign_id="batch_1",
                recipient_id="r1",
                position=0,
                to_number="+14155550103",
                status="dialing",
            ),
            False,
        ),
        (CampaignRecipientsStaged(campaign_id="batch_1", part_index=0, part_count=1, recipients=[]), False),
        (
            CampaignRecipientsClosed(
                campaign_id="batch_1", status="cancelled", part_index=0, part_count=1, recipients=[]
            ),
            False,
        ),
        (CallPlaced(**_dial(conversation_id="conv_1", placed_at_unix=1, **_CAMPAIGN_CALL)), False),
        (CallDialFailed(**_dial(status_code=500, error="Call failed", **_CAMPAIGN_CALL)), False),
        (CallStatusChanged(conversation_id="conv_1", status="completed", **_CAMPAIGN_CALL), False),
        (CallStatusChanged(conversation_id="conv_2", status="completed"), False),
        (
            PostCallWebhookReceived(
                conversation_id="conv_1", webhook_type="post_call_transcription", event_timestamp=1
            ),
            False,
        ),
        (
            PostCallTranscriptPart(
                conversation_id="conv_1", part_index=0, part_count=1, turn_count=0, transcript_json="[]"
            ),
            False,
        ),
        # What may answer an API request.
        (CallPlaced(**_dial(conversation_id="conv_3", placed_at_unix=1)), True),  # POST /calls/outbound
        (CallDialFailed(**_dial(status_code=429, error="Too many calls")), True),
        (CampaignUpdated.model_construct(type="campaign.updated"), True),
        (CustomerSessionStored(conversation_id="conv_1", customer_info=CustomerInfo(name="Ana")), True),
    ],
    ids=lambda v: v.type if hasattr(v, "type") else str(v),
)
def test_only_an_event_that_can_answer_a_command_looks_for_its_operation(event: Any, may: bool) -> None:
    assert may_conclude(event) is may


# ---- a shop's credentials, as a call's or a campaign's command carries them ----------------------


def test_store_credentials_travel_only_encrypted_for_their_field() -> None:
    keyring = Keyring(new_key())
    shop = ShopifyCredentials.model_validate(
        {
            "platform": "shopify",
            "base_url": "https://s.myshopify.com",
            "api_key": "k",
            "access_token": "shpat_x",
        }
    )
    fields = ecommerce_fields(keyring, shop)
    encrypted = fields["ecommerce_credentials_encrypted"]
    assert fields["ecommerce_platform"] == "shopify"
    assert encrypted is not None and "shpat_x" not in encrypted
    plain = keyring.decrypt(encrypted, context=message_context("ecommerce_credentials_encrypted"))
    assert json.loads(plain) == shop.model_dump()
    with pytest.raises(Undecryptable):
        keyring.decrypt(encrypted, context=message_context("token_encrypted"))
    assert ecommerce_fields(keyring, None) == {
        "ecommerce_platform": None,
        "ecommerce_credentials_encrypted": None,
    }


@pytest.mark.parametrize("retries", [True, False, None])
def test_the_post_call_registration_answer_says_whether_elevenlabs_retries_deliveries(
    retries: bool | None,
) -> None:
    """False (ElevenLabs refused `retry_enabled`) must reach the operator; None is an event from a
    tool-webhooks that predates the field."""
    event = PostCallWebhookRegistered(
        webhook_id="wh_1", webhook_url="https://x/hook", retries_enabled=retries
    )
    outcome = outcome_of(event)
    assert outcome.status_code == 200
    assert outcome.body == {
        "success": True,
        "webhook_id": "wh_1",
        "webhook_url": "https://x/hook",
        "retries_enabled": retries,
    }
