"""Real broker, real database, a real SMTP server (aiosmtpd) and a local stand-in for the e-mail API;
the service bootstrapped in-process."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr

from bus.runtime import message_headers
from contracts import topics
from contracts.notifier import SendEmail
from devinfra.broker import free_port
from devinfra.bus_harness import BusHarness, prepared, schema_text, service_env, started
from devinfra.pytest_plugin import isolated
from notifier.bootstrap import Container, bootstrap, run_migrations
from notifier.settings import Settings
from notifier.transports import HttpTransport, Transport

# This suite runs its own notifier instance(s): own database and topics.
database_url, topic_prefix = isolated("notifier")

pytestmark = pytest.mark.integration

DEFAULT_SENDER = "noreply@switchboard.example.com"
WEBHOOK_SECRET_KEY = "k9Yq0cVfQ3dM8r2tLw5xZ1bN7pH4sJ6gA0eU3iO9yT8="
WEBHOOK_TIMEOUT_S = 1.0
API_KEY = "api-key-canary-5f1e"


# ---- a real SMTP server ----------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class RecordingHandler:
    """Records every accepted envelope; answers DATA with scripted codes per recipient first."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.rcpts_seen: list[str] = []
        self.data_answers: dict[str, list[str]] = {}
        self.data_attempts: dict[str, int] = {}

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            self.rcpts_seen.append(address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpts = list(envelope.rcpt_tos)
        with self.lock:
            for rcpt in rcpts:
                self.data_attempts[rcpt] = self.data_attempts.get(rcpt, 0) + 1
                scripted = self.data_answers.get(rcpt)
                if scripted:
                    return scripted.pop(0)
            data = envelope.content if isinstance(envelope.content, bytes) else b""
            self.received.append(Received(str(envelope.mail_from), rcpts, data))
        return "250 Message accepted"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.rcpt_tos]

    def everything_seen(self) -> str:
        with self.lock:
            return "\n".join(
                [*self.rcpts_seen, *(r.mail_from for r in self.received)]
                + [r.data.decode(errors="replace") for r in self.received]
            )


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# ---- a stand-in for the HTTP e-mail API ------------------------------------------------------


@dataclass
class FakeEmailApi:
    """Records every POST; answers scripted (status, headers) per recipient first, then 202."""

    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)

    def to(self, address: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["json"].get("to") == address]


@pytest.fixture(scope="session")
def email_api() -> Iterator[FakeEmailApi]:
    api = FakeEmailApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with api.lock:
                api.requests.append(
                    {"path": self.path, "json": body, "authorization": self.headers.get("Authorization")}
                )
                scripted = api.answers.get(body.get("to", ""))
                status, headers = scripted.pop(0) if scripted else (202, {})
            # A careless API echoing the credentials back: the notifier must redact them.
            echo = self.headers.get("Authorization") if status == 401 else None
            payload = json.dumps({"status": status, "echo": echo}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}/email/send"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


# ---- the service -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(request: pytest.FixtureRequest, smtp_server: tuple[RecordingHandler, int]) -> Settings:
    values: dict[str, Any] = {
        **service_env(request),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server[1],
        "SMTP_TIMEOUT_S": 5,
        "DEFAULT_SENDER_EMAIL": DEFAULT_SENDER,
        "NOTIFIER_BACKOFF_S": 0.05,
        # Webhooks: the local receiver is on loopback (allowlisted, so http too); seconds, not hours.
        "SWITCHBOARD_SECRET_KEY": WEBHOOK_SECRET_KEY,
        "OUTBOUND_ALLOW_HOSTS": "127.0.0.1",
        "WEBHOOKS_TIMEOUT_S": WEBHOOK_TIMEOUT_S,
        "WEBHOOKS_RETRY_BASE_S": 0.2,
        "WEBHOOKS_RETRY_MAX_S": 2,
        "WEBHOOKS_RETRY_WINDOW_S": 600,
        "WEBHOOKS_POLL_INTERVAL_S": 0.1,
    }
    return prepared(
        Settings.model_validate(values),
        run_migrations,
        topics.NOTIFIER_COMMANDS,
        topics.NOTIFIER_EVENTS,
        topics.dead_letter(topics.NOTIFIER_COMMANDS),
        topics.TELEPHONY_EVENTS,
        topics.CAMPAIGN_EVENTS,
    )


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    async with started(bootstrap(settings)) as box:
        yield box


@dataclass(kw_only=True)
class Harness(BusHarness[SendEmail]):
    """Publishes commands like any producer would and collects every notifier event."""

    commands_topic = topics.NOTIFIER_COMMANDS
    events_topic = topics.NOTIFIER_EVENTS

    settings: Settings
    container: Container
    smtp: RecordingHandler

    async def table_text(self) -> str:
        """Every row of every notifier table (outbox payloads decoded), as one string."""
        return await schema_text(self.settings.database_url, "notifier")

    def marker(self) -> SendEmail:
        return email(to_email=f"marker-{uuid.uuid4().hex[:8]}@example.com")

    async def one(self, command: SendEmail) -> dict[str, Any]:
        event = await super().one(command)
        assert event["conversation_id"] == command.conversation_id
        return event


def email(**fields: Any) -> SendEmail:
    """A SendEmail to a fresh recipient unless told otherwise."""
    defaults: dict[str, Any] = {
        "conversation_id": f"conv_{uuid.uuid4().hex[:8]}",
        "template_id": "confirm_appointment",
        "to_email": f"rcpt-{uuid.uuid4().hex[:8]}@example.com",
        "to_name": "Ana Souza",
        "subject": "Appointment Confirmed - February 1 at 2:00 PM",
        "body": "Dear Ana,\n\nYour appointment is confirmed.\n\nThank you!\n",
        "correlation_id": uuid.uuid4().hex,
    }
    return SendEmail(**(defaults | fields))


@pytest.fixture(scope="session")
async def _harness(
    container: Container, settings: Settings, smtp_server: tuple[RecordingHandler, int]
) -> AsyncIterator[Harness]:
    async with Harness.connected(
        settings, headers=message_headers, container=container, smtp=smtp_server[0]
    ) as harness:
        yield harness


@pytest.fixture
async def harness(_harness: Harness) -> AsyncIterator[Harness]:
    yield _harness
    with _harness.smtp.lock:  # no scripted answer leaks into the next test
        _harness.smtp.data_answers.clear()


@pytest.fixture
async def http_harness(
    _harness: Harness, container: Container, settings: Settings, email_api: FakeEmailApi
) -> AsyncIterator[Harness]:
    """The same running service, its transport switched to the HTTP e-mail API for one test.

    Built exactly as bootstrap does when EMAIL_API_URL is set (no second consumer group to join).
    """
    api_settings = settings.model_copy(
        update={"email_api_url": email_api.url, "email_api_key": SecretStr(API_KEY)}
    )
    original: Transport = container.service.transport
    container.service.transport = HttpTransport(api_settings, container.http)
    try:
        yield _harness
    finally:
        container.service.transport = original
