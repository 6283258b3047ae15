"""Message building, header safety, failure classes and backoff: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest

from contracts.notifier import SendEmail
from notifier import domain
from notifier.domain import EmailError


def _command(**fields: Any) -> SendEmail:
    defaults: dict[str, Any] = {
        "conversation_id": "conv_1",
        "template_id": "t1",
        "to_email": "ana@example.com",
        "to_name": "Ana",
        "subject": "Hello",
        "body": "Hi Ana\n",
    }
    return SendEmail(**(defaults | fields))


def test_builds_one_plain_text_utf8_message() -> None:
    out = domain.build_email(_command(from_email="shop@acme.example"), "default@acme.example")
    message = out.message
    assert out.from_email == "shop@acme.example" and out.to_email == "ana@example.com"
    assert message["From"] == "shop@acme.example"
    assert message["To"] == "Ana <ana@example.com>"
    assert message["Subject"] == "Hello"
    assert message["Message-ID"].endswith("@acme.example>")
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    for header in ("Cc", "Bcc", "Reply-To"):
        assert message[header] is None


def test_non_ascii_names_subjects_and_bodies_are_encoded() -> None:
    out = domain.build_email(
        _command(to_name="Zoë, Ångström", subject="Olá ✓", body="çà\n"), "d@acme.example"
    )
    wire = out.message.as_bytes()
    assert wire.isascii()
    assert b"Content-Transfer-Encoding: quoted-printable" in wire
    assert out.message["To"].addresses[0].display_name == "Zoë, Ångström"
    assert len(out.message["To"].addresses) == 1


def test_default_sender_is_used_and_required() -> None:
    assert domain.build_email(_command(), "default@acme.example").from_email == "default@acme.example"
    with pytest.raises(EmailError) as exc:
        domain.build_email(_command(), None)
    assert exc.value.permanent and "DEFAULT_SENDER_EMAIL" in exc.value.error


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "a\r\nBcc: evil@example.com"},
        {"subject": "a\nb"},
        {"subject": "a\rb"},
        {"subject": "a\x00b"},
        {"to_name": "x\r\nBcc: evil@example.com"},
        {"from_email": "x@acme.example\r\nBcc: evil@example.com"},
        {"to_email": "x@example.com\r\nBcc: evil@example.com"},
        {"to_email": "x@example.com\n"},
        {"to_email": "a@example.com, b@example.com"},
        {"to_email": "a@example.com;b@example.com"},
        {"to_email": "Ana <a@example.com>"},
        {"to_email": " a@example.com"},
        {"to_email": "a@localhost"},
        {"to_email": "no-at-sign"},
        {"to_email": ""},
        {"from_email": "not an address"},
    ],
)
def test_unsafe_or_invalid_values_are_refused(fields: dict[str, str]) -> None:
    with pytest.raises(EmailError) as exc:
        domain.build_email(_command(**fields), "default@acme.example")
    assert exc.value.permanent


def test_invalid_default_sender_is_refused() -> None:
    with pytest.raises(EmailError):
        domain.build_email(_command(), "oops\r\nBcc: evil@example.com")


def test_api_payload_shape() -> None:
    out = domain.build_email(_command(), "d@acme.example")
    assert domain.api_payload(out) == {
        "to": "ana@example.com",
        "to_name": "Ana",
        "from": "d@acme.example",
        "subject": "Hello",
        "body": "Hi Ana\n",
    }


@pytest.mark.parametrize(
    ("code", "transient"), [(421, True), (451, True), (450, True), (550, False), (554, False)]
)
def test_smtp_codes(code: int, transient: bool) -> None:
    assert domain.smtp_code_is_transient(code) is transient


@pytest.mark.parametrize(
    ("status", "transient"), [(429, True), (500, True), (503, True), (400, False), (401, False), (404, False)]
)
def test_http_statuses(status: int, transient: bool) -> None:
    assert domain.http_status_is_transient(status) is transient


def test_retry_after_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert domain.parse_retry_after("3") == 3.0
    assert (
        domain.parse_retry_after(format_datetime(now + timedelta(seconds=10), usegmt=True), now=now) == 10.0
    )
    assert domain.parse_retry_after(format_datetime(now - timedelta(seconds=10), usegmt=True), now=now) == 0.0
    assert domain.parse_retry_after(None) is None
    assert domain.parse_retry_after("soon") is None


def test_backoff_is_exponential_capped_and_honours_retry_after() -> None:
    assert [domain.backoff_delay(a, 0.5, 30) for a in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert domain.backoff_delay(10, 0.5, 30) == 30
    assert domain.backoff_delay(1, 0.5, 30, retry_after_s=7) == 7
    assert domain.backoff_delay(1, 0.5, 30, retry_after_s=3600) == 30


def test_redact() -> None:
    assert domain.redact("key=s3cret!", ["s3cret"]) == "key=***!"
    assert len(domain.redact("x" * 5000, [])) == domain.MAX_ERROR_CHARS


ATTACK = "your order =?UTF-8?Q?=0D=0A?=Reply-To: billing@attacker.example"
# Each is a line break or control character once RFC 2047-decoded, or raw.
UNSAFE_VALUES = [
    ATTACK,
    "your order =?utf-8?b?DQo=?=Reply-To: billing@attacker.example",
    "your order =?utf-8?q?=0A?= Reply-To: billing@attacker.example",
    "your order =?iso-8859-1?q?=0D?= x",
    "your order =?utf-7?q?+AA0-?= x",  # CR in UTF-7, no 0x0D byte anywhere
    "your order =?x-unknown?q?=0A?= x",
    "your order =?utf-8?q?=00?= x",
    "your order =?utf-8?q?=E2=80=A8?= x",  # U+2028, encoded
    "a\rb",
    "a\nb",
    "a\u2028Reply-To: billing@attacker.example",
    "a\u2029b",
    "a\x00b",
    "a\x0bb",
    "a\x85b",
]


@pytest.mark.parametrize("field", ["subject", "to_name"])
@pytest.mark.parametrize("value", UNSAFE_VALUES)
def test_line_breaks_raw_or_encoded_are_refused_in_every_header(field: str, value: str) -> None:
    with pytest.raises(EmailError) as exc:
        domain.build_email(_command(**{field: value}), "d@acme.example")
    assert exc.value.permanent and field in exc.value.error


@pytest.mark.parametrize("value", ["=?utf-8?q?caf=C3=A9?= ok", "Tab\tok", "Zoë Ünal", "50% =? off"])
def test_encoded_words_and_tabs_without_line_breaks_are_sent(value: str) -> None:
    out = domain.build_email(_command(subject=value, to_name=value), "d@acme.example")
    assert domain.header_names(out.wire) == list(domain.EXPECTED_HEADERS)


def test_serialised_headers_are_checked_whatever_the_stdlib_folder_did() -> None:
    """The last line of defence, independent of `check_header`: on a Python without the fix for
    CVE-2024-6923 the folder writes the decoded CRLF out raw, and `check_wire` refuses the result."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "d@acme.example"
    message["To"] = "ana@example.com"
    message["Subject"] = "x"
    message["Reply-To"] = "billing@attacker.example"
    message.set_content("hi")
    with pytest.raises(EmailError):
        domain.check_wire(message.as_bytes())
    with pytest.raises(EmailError):
        domain.check_wire(b"From: a@b.c\r\nSubject: x\nReply-To: e@f.g\r\n\r\nbody")
    good = domain.build_email(_command(), "d@acme.example").wire
    domain.check_wire(good)


def test_unicode_display_name_is_encoded_and_decodes_back() -> None:
    out = domain.build_email(_command(to_name="Zoë Ünal", to_email="zoe@example.com"), "d@acme.example")
    assert out.wire.isascii()
    assert b"To: =?utf-8?q?Zo=C3=AB_=C3=9Cnal?= <zoe@example.com>\r\n" in out.wire
    parsed = message_from_bytes(out.wire, policy=policy.default)
    [address] = parsed["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Zoë Ünal", "zoe@example.com")


@pytest.mark.parametrize("field", ["from_email", "to_email"])
@pytest.mark.parametrize(
    "value",
    ["=?utf-8?b?DQo=?=@example.com", "a=?utf-8?q?=0D=0A?=b@example.com", "ana@example.com\u2028"],
)
def test_addresses_with_encoded_or_unicode_line_breaks_are_refused(field: str, value: str) -> None:
    with pytest.raises(EmailError) as exc:
        domain.build_email(_command(**{field: value}), "d@acme.example")
    assert exc.value.permanent
