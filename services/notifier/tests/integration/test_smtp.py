"""SendEmail over a real SMTP server: the exact message, header safety, at most once, retries."""

from __future__ import annotations

from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from sqlalchemy import select

from notifier import domain
from notifier.bootstrap import Container
from notifier.models import Delivery, DeliveryStatus
from notifier.transports import SmtpTransport

from .conftest import DEFAULT_SENDER, Harness, email, free_port

pytestmark = pytest.mark.integration


async def _delivery(container: Container, message_id: str) -> Delivery | None:
    async with container.sessionmaker() as session:
        return await session.scalar(select(Delivery).where(Delivery.message_id == message_id))


async def test_sends_exactly_the_requested_message(harness: Harness, container: Container) -> None:
    command = email(from_email="shop@acme.example", to_name="Zoë Ångström", body="Olá Zoë,\n\nçà va?\n")
    event = await harness.one(command)
    assert event["type"] == "email.sent"
    assert event["to_email"] == command.to_email
    assert event["from_email"] == "shop@acme.example"
    assert event["subject"] == command.subject
    assert event["transport"] == "smtp"

    [received] = harness.smtp.to(command.to_email)
    assert received.rcpt_tos == [command.to_email]
    assert received.mail_from == "shop@acme.example"
    message = received.message
    assert message["From"] == "shop@acme.example"
    assert message["To"].addresses[0].addr_spec == command.to_email
    assert message["To"].addresses[0].display_name == "Zoë Ångström"
    assert message["Subject"] == command.subject
    assert message["Cc"] is None and message["Bcc"] is None
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().replace("\r\n", "\n") == command.body

    row = await _delivery(container, command.message_id)
    assert row is not None and row.status == DeliveryStatus.SENT and row.attempts == 1


async def test_from_falls_back_to_the_default_sender(harness: Harness) -> None:
    command = email(from_email=None, to_name=None)
    event = await harness.one(command)
    assert event["type"] == "email.sent" and event["from_email"] == DEFAULT_SENDER
    [received] = harness.smtp.to(command.to_email)
    assert received.mail_from == DEFAULT_SENDER
    assert received.message["From"] == DEFAULT_SENDER
    assert received.message["To"] == command.to_email


INJECTION = "x\r\nBcc: evil@example.com"


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": f"Hello {INJECTION}"},
        {"subject": "Hello\nBcc: evil@example.com"},
        {"to_name": f"Ana {INJECTION}"},
        {"from_email": f"shop@acme.example{INJECTION}"},
        {"from_email": "shop@acme.example\x00"},
        {"to_email": f"victim@example.com{INJECTION}"},
        {"to_email": "victim@example.com, evil@example.com"},
        {"to_email": "Victim <victim@example.com>"},
        {"to_email": "not-an-address"},
    ],
    ids=[
        "subject-crlf",
        "subject-lf",
        "to_name",
        "from_email",
        "from_email-nul",
        "to_email",
        "two",
        "named",
        "bad",
    ],
)
async def test_header_injection_and_bad_addresses_send_nothing(
    harness: Harness, fields: dict[str, str]
) -> None:
    command = email(**fields)
    before = len(harness.smtp.received)
    event = await harness.one(command)
    assert event["type"] == "email.failed"
    assert event["permanent"] is True
    assert len(harness.smtp.received) == before + 1  # only the marker
    seen = harness.smtp.everything_seen()
    assert "evil@example.com" not in seen and "victim@example.com" not in seen


async def test_no_sender_at_all_is_a_permanent_failure(harness: Harness, container: Container) -> None:
    command = email(from_email=None)
    original = container.service._settings.default_sender_email
    container.service._settings.default_sender_email = None
    try:
        event = await harness.one(command)
    finally:
        container.service._settings.default_sender_email = original
    assert event["type"] == "email.failed" and event["permanent"] is True
    assert "DEFAULT_SENDER_EMAIL" in event["error"]
    assert harness.smtp.to(command.to_email) == []


async def test_redelivered_command_sends_one_email(harness: Harness) -> None:
    command = email()
    outcomes = await harness.deliver(command, command)
    assert [e["type"] for e in outcomes[command.message_id]] == ["email.sent"]
    assert len(harness.smtp.to(command.to_email)) == 1


async def test_a_delivery_found_sending_is_not_resent(harness: Harness, container: Container) -> None:
    command = email()
    async with container.sessionmaker() as session, session.begin():
        session.add(
            Delivery(
                message_id=command.message_id,
                status=DeliveryStatus.SENDING,
                attempts=0,
                conversation_id=command.conversation_id,
                template_id=command.template_id,
                to_email=command.to_email,
            )
        )
    event = await harness.one(command)
    assert event["type"] == "email.failed"
    assert event["permanent"] is True
    assert event["error"] == domain.UNKNOWN_AFTER_RESTART
    assert harness.smtp.to(command.to_email) == []
    assert command.to_email not in harness.smtp.everything_seen()
    row = await _delivery(container, command.message_id)
    assert row is not None and row.status == DeliveryStatus.FAILED
    assert row.last_error == domain.UNKNOWN_AFTER_RESTART


async def test_transient_451_is_retried_and_sent_once(harness: Harness, container: Container) -> None:
    command = email()
    harness.smtp.data_answers[command.to_email] = ["451 4.3.0 Try again later"]
    event = await harness.one(command)
    assert event["type"] == "email.sent"
    assert harness.smtp.data_attempts[command.to_email] == 2
    assert len(harness.smtp.to(command.to_email)) == 1
    row = await _delivery(container, command.message_id)
    assert row is not None and row.attempts == 2


async def test_permanent_550_fails_at_once(harness: Harness, container: Container) -> None:
    command = email()
    harness.smtp.data_answers[command.to_email] = ["550 5.1.1 No such user"] * 3
    event = await harness.one(command)
    assert event["type"] == "email.failed" and event["permanent"] is True
    assert "550" in event["error"]
    assert harness.smtp.data_attempts[command.to_email] == 1
    assert harness.smtp.to(command.to_email) == []


async def test_transient_failures_exhausted_are_not_permanent(harness: Harness, container: Container) -> None:
    command = email()
    attempts = container.settings.max_attempts
    harness.smtp.data_answers[command.to_email] = ["421 4.7.0 Busy"] * attempts
    event = await harness.one(command)
    assert event["type"] == "email.failed" and event["permanent"] is False
    assert harness.smtp.data_attempts[command.to_email] == attempts
    assert harness.smtp.to(command.to_email) == []
    row = await _delivery(container, command.message_id)
    assert row is not None and row.status == DeliveryStatus.FAILED and row.attempts == attempts


async def test_unreachable_server_is_retried_then_not_permanent(
    harness: Harness, container: Container
) -> None:
    command = email()
    closed = container.settings.model_copy(update={"smtp_port": free_port()})
    original = container.service.transport
    container.service.transport = SmtpTransport(closed)
    try:
        outcomes = (await harness.deliver(command))[command.message_id]
    finally:
        container.service.transport = original
    [event] = outcomes
    assert event["type"] == "email.failed" and event["permanent"] is False
    assert "connection failed" in event["error"]
    row = await _delivery(container, command.message_id)
    assert row is not None and row.attempts == container.settings.max_attempts


async def test_smtp_auth_logs_in_and_never_leaks_the_password(
    harness: Harness, container: Container, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "smtp-password-canary-3d9a"
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == password.encode())

    port = free_port()
    controller = Controller(
        harness.smtp,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,  # loopback test server without certificates
    )
    controller.start()
    original = container.service.transport
    try:
        good = container.settings.model_copy(
            update={"smtp_port": port, "smtp_username": "mailer", "smtp_password": SecretStr(password)}
        )
        container.service.transport = SmtpTransport(good)
        sent = email()
        assert (await harness.one(sent))["type"] == "email.sent"
        assert logins and set(logins) == {(b"mailer", password.encode())}
        assert len(harness.smtp.to(sent.to_email)) == 1

    finally:
        container.service.transport = original
        controller.stop()
    assert password not in str(harness.events)
    assert password not in await harness.table_text()
    captured = capsys.readouterr()
    assert password not in captured.out + captured.err


ATTACKER = "billing@attacker.example"


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": f"your order =?UTF-8?Q?=0D=0A?=Reply-To: {ATTACKER}"},
        {"subject": f"your order =?utf-8?b?DQo=?=Reply-To: {ATTACKER}"},
        {"subject": f"your order \rReply-To: {ATTACKER}"},
        {"subject": f"your order \nReply-To: {ATTACKER}"},
        {"subject": f"your order \u2028Reply-To: {ATTACKER}"},
        {"subject": f"your order \u2029Reply-To: {ATTACKER}"},
        {"subject": f"your order \x00Reply-To: {ATTACKER}"},
        {"to_name": f"Ana =?UTF-8?Q?=0D=0A?=Reply-To: {ATTACKER}"},
        {"to_name": f"Ana =?utf-8?b?DQo=?=Reply-To: {ATTACKER}"},
        {"to_name": f"Ana \u2028Reply-To: {ATTACKER}"},
        {"to_name": f"Ana \x00Reply-To: {ATTACKER}"},
    ],
    ids=[
        "subject-q-crlf",
        "subject-b-crlf",
        "subject-cr",
        "subject-lf",
        "subject-u2028",
        "subject-u2029",
        "subject-nul",
        "to_name-q-crlf",
        "to_name-b-crlf",
        "to_name-u2028",
        "to_name-nul",
    ],
)
async def test_encoded_line_breaks_never_become_a_header(harness: Harness, fields: dict[str, str]) -> None:
    """CVE-2024-6923's shape: an encoded-word that decodes to CRLF must not add a Reply-To, on any
    Python patch level (the check is ours, not the stdlib's)."""
    command = email(**fields)
    before = len(harness.smtp.received)
    event = await harness.one(command)
    arrived = harness.smtp.received[before:]  # this command's message (if any) and the marker
    assert all(received.message["Reply-To"] is None for received in arrived)
    assert all(ATTACKER.encode() not in received.data for received in arrived)
    assert harness.smtp.to(command.to_email) == []
    assert event["type"] == "email.failed" and event["permanent"] is True


async def test_unicode_display_name_arrives_encoded_and_decodes_back(harness: Harness) -> None:
    command = email(to_name="Zoë Ünal", subject="Ihre Bestellung für Zoë Ünal")
    event = await harness.one(command)
    assert event["type"] == "email.sent"
    [received] = harness.smtp.to(command.to_email)
    head = received.data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert f"To: =?utf-8?q?Zo=C3=AB_=C3=9Cnal?= <{command.to_email}>".encode() in head
    [address] = received.message["To"].addresses
    assert (address.display_name, address.addr_spec) == ("Zoë Ünal", command.to_email)
    assert received.message["Subject"] == "Ihre Bestellung für Zoë Ünal"
    assert domain.header_names(received.data) == list(domain.EXPECTED_HEADERS)
