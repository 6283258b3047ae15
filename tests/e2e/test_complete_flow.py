"""The spec's "Complete Flow Example": tools, knowledge base, e-mail template, agent, phone number and
a call with customer info and store credentials. During the simulated call ElevenLabs invokes the
products, orders and e-mail tools; the e-mail reaches the SMTP server rendered; the call completes."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import httpx

from devinfra.stack import Stack
from devinfra.standins.stores import WOO_KEY, WOO_SECRET, StoreState
from tests.e2e.conftest import Mailbox, poll


def test_complete_flow(
    api: httpx.Client, sim: httpx.Client, stack: Stack, smtp: tuple[int, Mailbox], woo: tuple[str, StoreState]
) -> None:
    woo_url, store = woo
    _, mailbox = smtp
    webhook_base = f"{stack.url('tool-webhooks')}/api/v1"

    tools = api.post("/api/v1/tools/ecommerce", json={"webhook_base_url": webhook_base}).json()
    doc = api.post(
        "/api/v1/knowledge-base/text", json={"text": "FAQ content here...", "name": "Company FAQ"}
    ).json()
    template = api.post(
        "/api/v1/email-templates",
        json={
            "name": "confirm_appointment",
            "description": "Send appointment confirmation email",
            "subject_template": "Appointment Confirmed - {{date}}",
            "body_template": "Dear {{customer_name}},\n\nConfirmed for {{date}} at {{time}}.",
            "parameters": [
                {"name": "date", "description": "The appointment date", "required": True},
                {"name": "time", "description": "The appointment time", "required": True},
            ],
            "webhook_base_url": webhook_base,
        },
    )
    assert template.status_code == 200, template.text
    tpl = template.json()
    assert tpl["template_id"] == "confirm_appointment" and tpl["tool_id"]
    listed = api.get("/api/v1/email-templates").json()
    assert listed["count"] >= 1 and "confirm_appointment" in {t["template_id"] for t in listed["templates"]}

    agent = api.post(
        "/api/v1/agents",
        json={
            "name": "Support Agent",
            "language": "en",
            "first_message": "Hello! How can I help you?",
            "system_prompt": "You are a helpful support agent...",
            "tool_ids": [tools["products_tool_id"], tools["orders_tool_id"], tpl["tool_id"]],
            "knowledge_base_ids": [doc["document_id"]],
        },
    )
    assert agent.status_code == 200, agent.text
    agent_id = agent.json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={
            "phone_number": "+14155551234",
            "label": "Support Line",
            "sid": "AC" + "4" * 32,
            "token": "your_token",
        },
    ).json()["phone_number_id"]
    assert api.patch(f"/api/v1/phone-numbers/{number}", json={"agent_id": agent_id}).status_code == 200

    # What the simulated caller says: a mug, order 1001 (billed to jane@example.com), an appointment.
    overrides = {
        "query": "mug",
        "order_number": "1001",
        "get_orders.email": "jane@example.com",
        "date": "February 1, 2026",
        "time": "2:00 PM",
    }
    sim.post(
        "/_sim/config", json={"tool_value_overrides": overrides, "invoke_tools": True}
    ).raise_for_status()
    store.reset()
    call = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": agent_id,
            "agent_phone_number_id": number,
            "to_number": "+14155559991",
            "customer_info": {"name": "John Doe", "email": "john@example.com"},
            "ecommerce_credentials": {
                "platform": "woocommerce",
                "base_url": woo_url,
                "api_key": WOO_KEY,
                "api_secret": WOO_SECRET,
            },
            "sender_email": "support@company.com",
        },
    )
    assert call.status_code == 200, call.text
    assert call.json()["success"] is True and call.json()["ecommerce_enabled"] is True
    cid = call.json()["conversation_id"]

    # The call completes after ElevenLabs (the simulator) called all three tools.
    poll(lambda: api.get(f"/api/v1/calls/{cid}").json().get("status") == "completed")
    calls = sim.get("/_sim/tool-calls", params={"conversation_id": cid}).json()["tool_calls"]
    by_name: dict[str, Any] = {c["tool_name"]: c for c in calls}
    assert set(by_name) == {"get_products", "get_orders", "confirm_appointment"}
    assert all(c["status"] == 200 for c in calls), calls
    products = by_name["get_products"]["response_text"]
    assert "Blue Mug" in products
    assert "1001" in by_name["get_orders"]["response_text"]
    assert "Done" in by_name["confirm_appointment"]["response_text"]
    paths = [r["path"] for r in store.requests]
    assert "/wp-json/wc/v3/products" in paths and any(p.startswith("/wp-json/wc/v3/orders") for p in paths)

    # The e-mail reached the SMTP server once, rendered, from the call's sender_email.
    poll(lambda: any(m[1] == ["john@example.com"] for m in mailbox.messages))
    sent = [m for m in mailbox.messages if m[1] == ["john@example.com"]]
    assert len(sent) == 1
    sender, recipients, raw = sent[0]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert sender == "support@company.com" and recipients == ["john@example.com"]
    assert message["From"] == "support@company.com"
    assert message["Subject"] == "Appointment Confirmed - February 1, 2026"
    body = message.get_content().replace("\r\n", "\n").strip()  # SMTP transports lines with CRLF
    assert body == "Dear John Doe,\n\nConfirmed for February 1, 2026 at 2:00 PM."
    emails = poll(lambda: api.get("/api/v1/emails", params={"conversation_id": cid}).json()["emails"])
    assert [e["status"] for e in emails] == ["sent"]
    assert emails[0]["subject"] == "Appointment Confirmed - February 1, 2026"
