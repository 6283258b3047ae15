"""The setup page: agents, phone numbers, tools, knowledge-base documents and e-mail templates as the
API lists them (first page of each), and one test call placed through the API's outbound-call route."""

from __future__ import annotations

from typing import Any

from gateway.console.web import call
from gateway.models import PhoneNumber
from gateway.routes import agents, calls, email_templates, knowledge_base, phone_numbers, tools
from gateway.schemas import OutboundCallRequest
from gateway.service import GatewayService

LISTED = 100


async def lists(service: GatewayService) -> dict[str, Any]:
    """{agents, phone_numbers, tools, documents, templates}: each the API list route's items."""
    found = {
        "agents": await call(agents.list_agents(service, page_size=LISTED, cursor=None)),
        "phone_numbers": await call(phone_numbers.list_phone_numbers(service, page_size=LISTED, cursor=None)),
        "tools": await call(tools.list_tools(service, page_size=LISTED, cursor=None)),
        "documents": await call(knowledge_base.list_documents(service, page_size=LISTED, cursor=None)),
        "templates": await call(email_templates.list_templates(service, page_size=LISTED, cursor=None)),
    }
    return {name: answer.body.get(name, []) for name, answer in found.items()}


async def place_test_call(
    service: GatewayService, agent_id: str, phone_number_id: str, to_number: str
) -> dict[str, str]:
    """Place one call with the API's outbound-call route of the number's provider; a notice."""
    if not to_number:
        return {"kind": "error", "text": "Enter the number to call, e.g. +14155550123."}
    phone = await service.find(PhoneNumber, phone_number_id)
    if phone is None:
        return {"kind": "error", "text": "Choose one of your phone numbers to call from."}
    place = calls.sip_trunk_outbound_call if phone.provider == "sip_trunk" else calls.twilio_outbound_call
    try:
        body = OutboundCallRequest(
            agent_id=agent_id, agent_phone_number_id=phone_number_id, to_number=to_number
        )
    except ValueError:
        return {"kind": "error", "text": "Choose an agent and a number to call from."}
    answer = await call(place(body, service))
    if answer.ok:
        conversation = answer.body.get("conversation_id") or answer.body.get("operation_id") or ""
        return {"kind": "ok", "text": f"Calling {to_number} now ({conversation})."}
    if "E.164" in answer.message:
        return {
            "kind": "error",
            "text": "That is not a phone number in international format: write it as +14155550123.",
        }
    return {"kind": "error", "text": answer.message}
