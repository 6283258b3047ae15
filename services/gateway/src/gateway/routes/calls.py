"""Outbound calls (api-v1.md section 9) and, beyond the spec, the call read model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from fastapi.responses import JSONResponse

from contracts import topics
from contracts.calling import number_time_zones
from contracts.quiet_hours import RULES_FILE, load_rules, outside_quiet_hours_problem
from contracts.telephony import CustomerInfo, PlaceCall
from gateway import domain
from gateway.errors import Unprocessable
from gateway.models import Agent, Call, PhoneNumber
from gateway.responses import WRITE_RESPONSES, CallList, CallPlacedOut, CallWithTranscript
from gateway.results import analysis_view
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import OutboundCallRequest

router = api_router()
log = structlog.get_logger("gateway.calls")

_ROUTE_FOR = {
    "twilio": "/api/v1/phone-numbers/twilio/outbound-call",
    "sip_trunk": "/api/v1/sip-trunk/outbound-call",
}


def _check_quiet_hours(body: OutboundCallRequest, to_number: str, service: Service) -> bool:
    """Refuse (422) a call the platform's quiet hours forbid now in any of the number's zones,
    unless the request overrides them; True when it does (the call then records the override)."""
    rules = load_rules(service.settings.quiet_hours_file or RULES_FILE)
    problem = outside_quiet_hours_problem(datetime.now(UTC), to_number, number_time_zones(to_number), rules)
    if problem is None:
        return False
    if not body.override_quiet_hours:
        raise Unprocessable(
            "Outside quiet hours", f'{problem}. Send "override_quiet_hours": true to call anyway.'
        )
    # The number is personal data: the call's own record (quiet_hours_overridden) says which.
    log.warning(
        "gateway.call.quiet_hours_overridden",
        agent_id=body.agent_id,
        phone_number_id=body.agent_phone_number_id,
    )
    return True


async def _place(
    body: OutboundCallRequest, provider: Literal["twilio", "sip_trunk"], service: Service
) -> JSONResponse:
    # Everything is checked before anything is dialled.
    to_number = domain.e164(body.to_number)
    await service.get(Agent, body.agent_id, "Agent not found")
    phone = await service.get(PhoneNumber, body.agent_phone_number_id, "Phone number not found")
    if phone.provider != provider:
        raise Unprocessable(
            f"Phone number {phone.phone_number_id} is a {phone.provider} number",
            f"Use {_ROUTE_FOR[phone.provider]}",
        )
    customer = body.customer_info
    if customer is not None and customer.phone is not None:
        domain.e164(customer.phone)
    overridden = _check_quiet_hours(body, to_number, service)
    credentials = body.ecommerce_credentials
    command = PlaceCall(
        provider=provider,
        agent_id=body.agent_id,
        agent_phone_number_id=body.agent_phone_number_id,
        to_number=to_number,
        first_message=body.first_message,
        dynamic_variables=body.dynamic_variables,
        customer_info=CustomerInfo(**customer.model_dump()) if customer else None,
        ecommerce_platform=credentials.platform if credentials else None,
        ecommerce_credentials_encrypted=(
            domain.encrypt(
                service.settings.keyring, credentials.model_dump(), "ecommerce_credentials_encrypted"
            )
            if credentials
            else None
        ),
        sender_email=body.sender_email,
        quiet_hours_overridden=overridden,
    )
    return respond(await service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=to_number))


@router.post(
    "/phone-numbers/twilio/outbound-call",
    tags=["calls"],
    response_model=CallPlacedOut,
    responses=WRITE_RESPONSES,
)
async def twilio_outbound_call(body: OutboundCallRequest, service: Service) -> JSONResponse:
    return await _place(body, "twilio", service)


@router.post(
    "/sip-trunk/outbound-call", tags=["calls"], response_model=CallPlacedOut, responses=WRITE_RESPONSES
)
async def sip_trunk_outbound_call(body: OutboundCallRequest, service: Service) -> JSONResponse:
    return await _place(body, "sip_trunk", service)


def call_view(c: Call) -> dict[str, Any]:
    return {
        "conversation_id": c.conversation_id,
        "status": c.status,
        "provider": c.provider,
        "agent_id": c.agent_id,
        "phone_number_id": c.phone_number_id,
        "to_number": c.to_number,
        "call_sid": c.call_sid,
        "sip_call_id": c.sip_call_id,
        "duration_seconds": c.duration_seconds,
        "outcome": c.outcome,
        "summary": c.summary,
        "reason": c.reason,
        "ecommerce_enabled": c.ecommerce_enabled,
        "campaign_id": c.campaign_id,
        "recipient_id": c.recipient_id,
        "attempt": c.attempt,
        "placed_at_unix": c.placed_at_unix,
        "ended_at_unix": c.ended_at_unix,
        "quiet_hours_overridden": c.quiet_hours_overridden,
    }


CallStatusFilter = Literal["dialing", "in_progress", "completed", "no_answer", "busy", "failed", "voicemail"]


@router.get("/calls", tags=["calls"], response_model=CallList)
async def list_calls(
    service: Service,
    page_size: PageSize = 30,
    cursor: str | None = None,
    status: CallStatusFilter | None = None,
    agent_id: str | None = None,
    phone_number_id: str | None = None,
    campaign_id: str | None = None,
) -> dict[str, Any]:
    filters = {
        k: v
        for k, v in {
            "status": status,
            "agent_id": agent_id,
            "phone_number_id": phone_number_id,
            "campaign_id": campaign_id,
        }.items()
        if v is not None
    }
    rows, next_cursor = await service.page(Call, cursor, page_size, filters)
    return {"calls": [call_view(c) for c in rows], "cursor": next_cursor}


@router.get("/calls/{conversation_id}", tags=["calls"], response_model=CallWithTranscript)
async def get_call(conversation_id: str, service: Service) -> dict[str, Any]:
    """One call, with its `transcript` (`[{role, message, time_in_call_secs}]`, or null until the
    post-call webhook's transcript has arrived whole) and its post-call `analysis` (call_successful,
    transcript_summary, data_collection_results, evaluation_criteria_results; null until it came)."""
    call = await service.get(Call, conversation_id, "Call not found")
    return {
        **call_view(call),
        "transcript": await service.transcript(conversation_id),
        "analysis": analysis_view(await service.analysis(conversation_id)),
    }
