"""SendEmail through the HTTP e-mail API (EMAIL_API_URL): payload, auth, 429/5xx retries, 4xx failures."""

from __future__ import annotations

import pytest

from .conftest import API_KEY, FakeEmailApi, Harness, email

pytestmark = pytest.mark.integration


async def test_posts_the_documented_json(http_harness: Harness, email_api: FakeEmailApi) -> None:
    command = email(from_email="shop@acme.example")
    event = await http_harness.one(command)
    assert event["type"] == "email.sent" and event["transport"] == "http"
    [request] = email_api.to(command.to_email)
    assert request["path"] == "/email/send"
    assert request["authorization"] == f"Bearer {API_KEY}"
    assert request["json"] == {
        "to": command.to_email,
        "to_name": command.to_name,
        "from": "shop@acme.example",
        "subject": command.subject,
        "body": command.body,
    }
    assert http_harness.smtp.to(command.to_email) == []


async def test_429_with_retry_after_then_200_sends_once(
    http_harness: Harness, email_api: FakeEmailApi
) -> None:
    command = email()
    email_api.answers[command.to_email] = [(429, {"Retry-After": "1"})]
    event = await http_harness.one(command)
    assert event["type"] == "email.sent"
    assert len(email_api.to(command.to_email)) == 2  # refused once, then accepted


async def test_500_is_retried(http_harness: Harness, email_api: FakeEmailApi) -> None:
    command = email()
    email_api.answers[command.to_email] = [(500, {}), (503, {})]
    event = await http_harness.one(command)
    assert event["type"] == "email.sent"
    assert len(email_api.to(command.to_email)) == 3


async def test_400_is_a_permanent_failure(http_harness: Harness, email_api: FakeEmailApi) -> None:
    command = email()
    email_api.answers[command.to_email] = [(400, {})]
    event = await http_harness.one(command)
    assert event["type"] == "email.failed" and event["permanent"] is True
    assert "400" in event["error"]
    assert len(email_api.to(command.to_email)) == 1


async def test_5xx_exhausted_is_not_permanent(http_harness: Harness, email_api: FakeEmailApi) -> None:
    command = email()
    attempts = http_harness.settings.max_attempts
    email_api.answers[command.to_email] = [(502, {})] * attempts
    event = await http_harness.one(command)
    assert event["type"] == "email.failed" and event["permanent"] is False
    assert len(email_api.to(command.to_email)) == attempts


async def test_header_injection_never_reaches_the_api(http_harness: Harness, email_api: FakeEmailApi) -> None:
    command = email(subject="Hi\r\nBcc: evil@example.com")
    event = await http_harness.one(command)
    assert event["type"] == "email.failed" and event["permanent"] is True
    assert email_api.to(command.to_email) == []


async def test_api_key_never_in_events_or_tables(http_harness: Harness, email_api: FakeEmailApi) -> None:
    command = email()
    email_api.answers[command.to_email] = [(401, {})]
    await http_harness.one(command)
    assert API_KEY not in str(http_harness.events)
    assert API_KEY not in await http_harness.table_text()
    [event] = http_harness.outcomes(command.message_id)
    assert event["type"] == "email.failed" and event["permanent"] is True
    assert "401" in event["error"] and "***" in event["error"]
