"""Outbound calls (api-v1.md section 9) and, beyond the spec, the call read model."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse

from gateway import views
from gateway.calls import Calls
from gateway.models import Call
from gateway.responses import WRITE_RESPONSES, CallList, CallPlacedOut, CallWithTranscript
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import OutboundCallRequest

router = api_router()


@router.post(
    "/phone-numbers/twilio/outbound-call",
    tags=["calls"],
    response_model=CallPlacedOut,
    responses=WRITE_RESPONSES,
)
async def twilio_outbound_call(body: OutboundCallRequest, service: Service) -> JSONResponse:
    return respond(await Calls(service).place(body, "twilio"))


@router.post(
    "/sip-trunk/outbound-call", tags=["calls"], response_model=CallPlacedOut, responses=WRITE_RESPONSES
)
async def sip_trunk_outbound_call(body: OutboundCallRequest, service: Service) -> JSONResponse:
    return respond(await Calls(service).place(body, "sip_trunk"))


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
    return {"calls": [views.call_view(c) for c in rows], "cursor": next_cursor}


@router.get("/calls/{conversation_id}", tags=["calls"], response_model=CallWithTranscript)
async def get_call(conversation_id: str, service: Service) -> dict[str, Any]:
    """One call, with its `transcript` (`[{role, message, time_in_call_secs}]`, or null until the
    post-call webhook's transcript has arrived whole) and its post-call `analysis` (call_successful,
    transcript_summary, data_collection_results, evaluation_criteria_results; null until it came)."""
    return await Calls(service).call(conversation_id)
