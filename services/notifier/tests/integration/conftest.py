"""Real broker, real database, a real SMTP server (aiosmtpd) and a local stand-in for the e-mail API;
the service bootstrapped in-process."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr
from sqlalchemy import text

from bus.runtime import message_headers
from contracts import topics
from contracts.base import Message
from contracts.notifier import SendEmail
from devinfra.broker import create_topics
from devinfra.pytest_plugin import isolated
from notifier.bootstrap import Container, bootstrap, run_migrations
from notifier.settings import Settings
from notifier.transports import HttpTransport, Transport

# This suite runs its own notifier instance(s): own database and topics.
database_url, topic_prefix = isolated("notifier")

pytestmark = pytest.mark.integration

DEADLINE_S = 20.0
DEFAULT_SENDER = "noreply@switchboard.example.com"
API_KEY = "api-key-canary-5f1e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
def settings(
    database_url: str,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    topic_prefix: str,
    smtp_server: tuple[RecordingHandler, int],
) -> Settings:
    values: dict[str, Any] = {
        **kafka_client_env,
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server[1],
        "SMTP_TIMEOUT_S": 5,
        "DEFAULT_SENDER_EMAIL": DEFAULT_SENDER,
        "NOTIFIER_BACKOFF_S": 0.05,
        "BUS_RETRY_BACKOFF_MS": 50,
    }
    settings = Settings.model_validate(values)
    create_topics(
        kafka_bootstrap_servers,
        [
            settings.topic(topics.NOTIFIER_COMMANDS),
            settings.topic(topics.NOTIFIER_EVENTS),
            settings.topic(topics.dead_letter(topics.NOTIFIER_COMMANDS)),
        ],
    )
    run_migrations(settings)
    return settings


@pytest.fixture(scope="session")
async def container(settings: Settings) -> AsyncIterator[Container]:
    box = bootstrap(settings)
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


@dataclass
class Harness:
    """Publishes commands like any producer would and collects every notifier event."""

    settings: Settings
    producer: AIOKafkaProducer
    container: Container
    smtp: RecordingHandler
    events: list[dict[str, Any]] = field(default_factory=list)

    async def publish(self, message: Message, *, key: str = "k") -> None:
        headers = [(k, v.encode()) for k, v in message_headers(message).items()]
        await self.producer.send_and_wait(
            self.settings.topic(topics.NOTIFIER_COMMANDS),
            message.model_dump_json().encode(),
            key=key.encode(),
            headers=headers,
        )

    def outcomes(self, command_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("causation_id") == command_id]

    async def table_text(self) -> str:
        """Every row of every notifier table (outbox payloads decoded), as one string."""
        chunks: list[str] = []
        async with self.container.engine.connect() as connection:
            names = await connection.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'notifier'")
            )
            for (name,) in names.all():
                rows = await connection.execute(text(f'SELECT t::text FROM notifier."{name}" t'))  # noqa: S608
                chunks.extend(r[0] for r in rows.all())
            payloads = await connection.execute(
                text("SELECT convert_from(payload, 'UTF8') FROM notifier.outbox")
            )
            chunks.extend(r[0] for r in payloads.all())
        return "\n".join(chunks)

    async def deliver(self, *commands: Message) -> dict[str, list[dict[str, Any]]]:
        """Publish in order on one partition, then a marker; wait until all have outcomes.

        The marker is handled after every command before it (same key, same partition), so by the
        time its outcome arrives a duplicate outcome of an earlier command would have been written.
        """
        marker = email(to_email=f"marker-{uuid.uuid4().hex[:8]}@example.com")
        for command in (*commands, marker):
            await self.publish(command)
        wanted = {c.message_id for c in (*commands, marker)}
        deadline = time.monotonic() + DEADLINE_S
        while not all(self.outcomes(i) for i in wanted):
            if time.monotonic() > deadline:
                raise AssertionError(f"no outcome for {[i for i in wanted if not self.outcomes(i)]}")
            await asyncio.sleep(0.02)  # polling with a deadline
        return {c.message_id: self.outcomes(c.message_id) for c in commands}

    async def one(self, command: SendEmail) -> dict[str, Any]:
        outcomes = (await self.deliver(command))[command.message_id]
        assert len(outcomes) == 1, outcomes
        event = outcomes[0]
        assert event["causation_id"] == command.message_id
        assert event["correlation_id"] == command.correlation_id
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
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(
        settings.topic(topics.NOTIFIER_EVENTS),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await producer.start()
    await consumer.start()
    harness = Harness(settings, producer, container, smtp_server[0])

    async def collect() -> None:
        async for record in consumer:
            harness.events.append(json.loads(record.value or b"{}"))

    task = asyncio.create_task(collect())
    try:
        yield harness
    finally:
        task.cancel()
        await consumer.stop()
        await producer.stop()


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


async def wait_until(check: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # polling with a deadline
