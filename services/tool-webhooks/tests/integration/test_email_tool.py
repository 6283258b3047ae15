"""The e-mail tool: templates and sessions projected from Kafka events, SendEmail out via the outbox."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import pytest

from contracts import topics
from contracts.provisioning import (
    EmailTemplateCreated,
    EmailTemplateDeleted,
    EmailTemplateRecord,
    TemplateParameter,
    ToolRecord,
)
from contracts.telephony import CustomerInfo, CustomerSessionDeleted, CustomerSessionStored
from tool_webhooks import domain
from tool_webhooks.models import CustomerSession, EmailInvocation, EmailTemplate

from .conftest import Harness
from .test_ecommerce_tools import place_call

pytestmark = pytest.mark.integration

SUBJECT = "Appointment Confirmed - {{date}} at {{ time }}"
BODY = "Dear {{customer_name}},\n\nDate: {{date}}\nTime: {{time}}\n{{notes}}\nWe wrote to {{email}} ({{name}}).{{unknown}}"


async def create_template(harness: Harness, **overrides: Any) -> str:
    template_id = overrides.pop("template_id", f"confirm_appointment_{uuid.uuid4().hex[:6]}")
    record = EmailTemplateRecord(
        template_id=template_id,
        name=template_id,
        description="Confirm an appointment.",
        subject_template=overrides.pop("subject_template", SUBJECT),
        body_template=overrides.pop("body_template", BODY),
        parameters=[
            TemplateParameter(name="date", required=True),
            TemplateParameter(name="time", required=True),
            TemplateParameter(name="notes", required=False),
        ],
        tool_id="tool_email_1",
        created_at="2026-01-28T08:38:02",
    )
    tool = ToolRecord(tool_id="tool_email_1", name=template_id, purpose="email", created_at_unix=0)
    await harness.publish(
        EmailTemplateCreated(template=record, tool=tool), topics.PROVISIONING_EVENTS, template_id
    )
    await harness.wait_row(EmailTemplate.__table__, template_id=template_id)  # type: ignore[arg-type]
    return template_id


async def store_session(harness: Harness, conversation_id: str, **info: Any) -> None:
    event = CustomerSessionStored(
        conversation_id=conversation_id,
        customer_info=CustomerInfo(**info),
        sender_email="bookings@example.com",
    )
    await harness.publish(event, topics.TELEPHONY_EVENTS, key=conversation_id)
    await harness.until(
        lambda: _session_is(harness, conversation_id, info.get("email")), "the customer session"
    )


async def _session_is(harness: Harness, conversation_id: str, email: str | None) -> bool:
    row = await harness.row(CustomerSession.__table__, conversation_id=conversation_id)  # type: ignore[arg-type]
    return row is not None and row["email"] == email


async def test_email_is_rendered_with_session_placeholders_and_published_once(harness: Harness) -> None:
    template_id = await create_template(harness)
    conversation_id = await place_call(
        harness, None, customer=CustomerInfo(name="Jane Doe", email="jane@example.com", phone="+14155550100")
    )
    params = {"date": "February 1, 2026", "time": "2:00 PM", "notes": "Please bring your ID"}
    body = {"conversation_id": conversation_id, **params}

    first = await harness.tool(f"email/{template_id}", body)
    second = await harness.tool(f"email/{template_id}", {**body, "extra_unknown": "ignored"})
    expected = {
        "success": True,
        "message": f"Done — I've sent the {template_id.replace('_', ' ')} e-mail to j***@example.com.",
    }
    assert (first.status_code, first.json()) == (200, expected)
    assert second.json() == expected

    command = await harness.wait_command(conversation_id=conversation_id, template_id=template_id)
    assert command["type"] == "email.send"
    assert command["to_email"] == "jane@example.com" and command["to_name"] == "Jane Doe"
    assert command["from_email"] == "shop@example.com"
    assert command["subject"] == "Appointment Confirmed - February 1, 2026 at 2:00 PM"
    assert command["body"] == (
        "Dear Jane Doe,\n\nDate: February 1, 2026\nTime: 2:00 PM\nPlease bring your ID\n"
        "We wrote to jane@example.com (Jane Doe)."
    )
    key = domain.invocation_key(conversation_id, template_id, params)
    row = await harness.row(EmailInvocation.__table__, key_hash=key)  # type: ignore[arg-type]
    assert row is not None and row["message_id"] == command["message_id"]

    # A different invocation on the same conversation (same partition, so ordered after any
    # duplicate): once it arrives, a second SendEmail for the first call would have arrived too.
    marker = await harness.tool(f"email/{template_id}", {**body, "notes": "marker"})
    assert marker.json()["success"] is True
    await harness.wait_command(
        conversation_id=conversation_id, body=command["body"].replace("Please bring your ID", "marker")
    )
    sent = [c for c in harness.commands if c["conversation_id"] == conversation_id]
    assert len(sent) == 2
    assert sent[0]["message_id"] == command["message_id"]


async def test_missing_required_parameters(harness: Harness) -> None:
    template_id = await create_template(harness)
    conversation_id = await place_call(harness, None, customer=CustomerInfo(name="A", email="a@example.com"))
    response = await harness.tool(
        f"email/{template_id}", {"conversation_id": conversation_id, "time": "2 PM", "date": "  "}
    )
    assert response.status_code == 200
    assert response.json() == {
        "success": False,
        "message": "I still need the date before I can send that e-mail.",
        "error": "missing_parameters",
    }
    both = await harness.tool(f"email/{template_id}", {"conversation_id": conversation_id})
    assert both.json()["message"] == "I still need the date and time before I can send that e-mail."


async def test_no_email_on_file(harness: Harness) -> None:
    template_id = await create_template(harness)
    conversation_id = await place_call(harness, None)
    body = {"conversation_id": conversation_id, "date": "Monday", "time": "9 AM"}
    response = await harness.tool(f"email/{template_id}", body)
    assert response.json() == {
        "success": False,
        "message": "I don't have an e-mail address for you on file.",
        "error": "no_email",
    }
    await store_session(harness, conversation_id, name="Sam", email="sam@example.com")
    stored = await harness.tool(f"email/{template_id}", body)
    assert stored.json()["success"] is True
    command = await harness.wait_command(conversation_id=conversation_id)
    assert command["from_email"] == "bookings@example.com"

    await harness.publish(
        CustomerSessionDeleted(conversation_id=conversation_id), topics.TELEPHONY_EVENTS, conversation_id
    )
    await harness.until(lambda: _gone(harness, conversation_id), "the session to be deleted")
    again = await harness.tool(f"email/{template_id}", {**body, "time": "10 AM"})
    assert again.json()["error"] == "no_email"


async def _gone(harness: Harness, conversation_id: str) -> bool:
    return await harness.row(CustomerSession.__table__, conversation_id=conversation_id) is None  # type: ignore[arg-type]


async def test_header_injection_cannot_add_a_subject_line(harness: Harness) -> None:
    template_id = await create_template(harness)
    conversation_id = await place_call(
        harness, None, customer=CustomerInfo(name="Eve\r\nBcc: x@evil.example", email="eve@example.com")
    )
    response = await harness.tool(
        f"email/{template_id}",
        {
            "conversation_id": conversation_id,
            "date": "Monday\r\nBcc: victim@evil.example",
            "time": "9\nX-Injected: 1",
        },
    )
    assert response.json()["success"] is True
    command = await harness.wait_command(conversation_id=conversation_id)
    subject = command["subject"]
    assert "\r" not in subject and "\n" not in subject
    assert subject == "Appointment Confirmed - Monday Bcc: victim@evil.example at 9 X-Injected: 1"
    assert "\n" not in command["to_name"]


@pytest.mark.parametrize(
    ("date", "name"),
    [
        (
            "your order =?UTF-8?Q?=0D=0A?=Reply-To: billing@attacker.example",
            "Eve =?utf-8?b?DQo=?=Bcc: x@evil.example",
        ),
        ("your order =?utf-8?b?DQo=?=Reply-To: billing@attacker.example", "Eve\u2028Bcc: x@evil.example"),
        ("your order \x00\u2029Reply-To: billing@attacker.example", "Eve\u2029Bcc: x@evil.example"),
    ],
    ids=["q-crlf", "b-crlf", "separators-nul"],
)
async def test_encoded_line_breaks_from_the_caller_are_flattened(
    harness: Harness, date: str, name: str
) -> None:
    """CVE-2024-6923's shape: an encoded-word that decodes to CRLF is read as its text, on one line."""
    template_id = await create_template(harness)
    conversation_id = await place_call(
        harness, None, customer=CustomerInfo(name=name, email="eve@example.com")
    )
    response = await harness.tool(
        f"email/{template_id}", {"conversation_id": conversation_id, "date": date, "time": "9"}
    )
    assert response.json()["success"] is True
    command = await harness.wait_command(conversation_id=conversation_id)
    for value in (command["subject"], command["to_name"]):
        assert "=?" not in value
        assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value)
    assert command["subject"] == "Appointment Confirmed - your order Reply-To: billing@attacker.example at 9"
    assert command["to_name"].startswith("Eve ") and command["to_name"].endswith("x@evil.example")


async def test_template_syntax_is_not_evaluated(harness: Harness) -> None:
    template_id = await create_template(
        harness,
        subject_template="{{date}} {{ __class__ }} {% if x %}",
        body_template="{{date.__class__}} {{time}}",
    )
    conversation_id = await place_call(harness, None, customer=CustomerInfo(email="t@example.com"))
    response = await harness.tool(
        f"email/{template_id}", {"conversation_id": conversation_id, "date": "{{time}}", "time": "${7*7}"}
    )
    assert response.json()["success"] is True
    command = await harness.wait_command(conversation_id=conversation_id)
    assert command["subject"] == "{{time}} {% if x %}"  # whitespace in a subject is collapsed
    assert command["body"] == "{{date.__class__}} ${7*7}"


async def test_unknown_or_deleted_template_and_bad_tokens(harness: Harness) -> None:
    template_id = await create_template(harness)
    conversation_id = await place_call(harness, None, customer=CustomerInfo(email="u@example.com"))
    body = {"conversation_id": conversation_id, "date": "Monday", "time": "9 AM"}
    other_route = (await harness.create_tool("email/another_template"))[2]
    assert (await harness.tool(f"email/{template_id}", body, token=other_route)).status_code == 401
    assert (await harness.tool(f"email/{template_id}", body, token=None)).status_code == 401

    await harness.publish(
        EmailTemplateDeleted(template_id=template_id), topics.PROVISIONING_EVENTS, template_id
    )
    await harness.until(lambda: _template_gone(harness, template_id), "the template to be deleted")
    response = await harness.tool(f"email/{template_id}", body)
    assert response.json() == {
        "success": False,
        "message": "I can't send that e-mail right now.",
        "error": "unknown_template",
    }
    assert [c for c in harness.commands if c["conversation_id"] == conversation_id] == []


async def _template_gone(harness: Harness, template_id: str) -> bool:
    return await harness.row(EmailTemplate.__table__, template_id=template_id) is None  # type: ignore[arg-type]
