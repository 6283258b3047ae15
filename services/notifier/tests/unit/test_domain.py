"""Message building, header safety, failure classes and backoff: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
