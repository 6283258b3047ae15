"""Campaigns (api-v1.md 10): submit, list, status, per-call results, cancel; beyond the spec pause,
resume and a do-not-call list. The orchestrator is the campaigns service; this is its REST face."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from fastapi.responses import JSONResponse

from bus.limits import HEADERS_ALLOWANCE_BYTES, RECORD_OVERHEAD_BYTES, pack_to_fit
from contracts import topics
from contracts.campaigns import (
    AddCampaignRecipients,
    AddDoNotCall,
    CallingWindow,
    CampaignRecipient,
    CancelCampaign,
    PauseCampaign,
    RemoveDoNotCall,
    ResumeCampaign,
    RetryDelays,
    SubmitCampaign,
)
from elevenlabs_client import dynamic_variables as variables
from gateway import domain
from gateway.errors import ApiError, Unprocessable
from gateway.models import Agent, Campaign, DoNotCall, PhoneNumber, Tool
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import BatchSubmitRequest, DoNotCallRequest
from gateway.service import GatewayService
from gateway.uow import UnitOfWork

router = api_router()


def job_view(c: Campaign) -> dict[str, Any]:
    return {
        "id": c.campaign_id,
        "name": c.name,
        "agent_id": c.agent_id,
        "status": c.status,
        "phone_number_id": c.phone_number_id,
        "phone_provider": c.phone_provider,
        "created_at_unix": c.created_at_unix,
        "scheduled_time_unix": c.scheduled_time_unix,
        "timezone": c.timezone,
        "total_calls_dispatched": c.total_calls_dispatched,
        "total_calls_scheduled": c.total_calls_scheduled,
        "total_calls_finished": c.total_calls_finished,
        "last_updated_at_unix": c.last_updated_at_unix,
        "retry_count": c.retry_count,
    }


def _chunks(
    recipients: list[CampaignRecipient], command: SubmitCampaign, max_items: int, limit: int
) -> list[list[CampaignRecipient]]:
    """Recipients in chunks of at most `max_items` (BATCH_CHUNK_SIZE) that each fit one bus message
    (BUS_MAX_MESSAGE_BYTES): long dynamic variables make smaller chunks, never a refused campaign."""
    envelope = len(command.model_dump_json().encode())  # the first chunk travels with the submission
    budget = limit - RECORD_OVERHEAD_BYTES - HEADERS_ALLOWANCE_BYTES - envelope
    sizes = [len(r.model_dump_json().encode()) + 1 for r in recipients]
    return [
        recipients[run.start : run.stop] for run in pack_to_fit(sizes, budget=budget, max_items=max_items)
    ]


def _recipients(body: BatchSubmitRequest, needs: AgentNeeds) -> list[CampaignRecipient]:
    """Validated recipients, or a 422 listing every bad one by index (bad number, duplicate id, or
    dynamic variables the agent needs that neither the recipient nor the agent's defaults give)."""
    problems: list[dict[str, Any]] = []
    seen_ids: set[str] = set()
    first_index: dict[str, int] = {}
    out: list[CampaignRecipient] = []
    for index, r in enumerate(body.recipients):
        try:
            number = domain.e164(r.phone_number)
        except ApiError:
            problems.append({"index": index, "phone_number": r.phone_number, "error": domain.E164_ERROR})
            continue
        # One person, one call: the same number twice would be dialled twice.
        if number in first_index:
            first = first_index[number]
            problems.append(
                {
                    "index": index,
                    "phone_number": r.phone_number,
                    "error": f"duplicate phone number: the same number as index {first}",
                    "duplicate_of": first,
                }
            )
            continue
        first_index[number] = index
        if missing := variables.unmet(needs.required, r.dynamic_variables, needs.defaults):
            problems.append(
                {
                    "index": index,
                    "phone_number": r.phone_number,
                    "error": f"Missing dynamic variables: {', '.join(missing)}",
                    "missing_dynamic_variables": missing,
                }
            )
            continue
        recipient_id = r.id or f"r{index}"
        if recipient_id in seen_ids:
            problems.append(
                {"index": index, "phone_number": r.phone_number, "error": "duplicate recipient id"}
            )
            continue
        seen_ids.add(recipient_id)
        out.append(
            CampaignRecipient(
                recipient_id=recipient_id,
                phone_number=number,
                name=r.name,
                email=r.email,
                dynamic_variables=r.dynamic_variables,
            )
        )
    if problems:
        raise Unprocessable("Invalid recipients", problems)
    return out


@dataclass(frozen=True)
class AgentNeeds:
    required: set[str]
    defaults: dict[str, Any]


async def _needs(agent: Agent, service: GatewayService) -> AgentNeeds:
    """What the agent's config (the read model: ElevenLabs' GET agent answer) and its known tools
    need; telephony checks again against ElevenLabs right before each dial."""
    config = {"conversation_config": agent.conversation_config}
    tools = [
        tool.tool_config
        for tool_id in variables.tool_ids(config)
        if (tool := await service.find(Tool, tool_id)) is not None
    ]
    return AgentNeeds(variables.required(config, tools), variables.defaults(config))


@router.post("/batch-calling/submit", tags=["batch-calling"])
async def submit(body: BatchSubmitRequest, service: Service) -> JSONResponse:
    limit = service.settings.batch_max_recipients
    if len(body.recipients) > limit:
        raise Unprocessable("Too many recipients", f"At most {limit} recipients per submission")
    agent = await service.get(Agent, body.agent_id, "Agent not found")
    phone = await service.get(PhoneNumber, body.phone_number_id, "Phone number not found")
    recipients = _recipients(body, await _needs(agent, service))
    campaign_id = f"batch_{uuid.uuid4().hex}"
    credentials = body.ecommerce_credentials
    command = SubmitCampaign(
        campaign_id=campaign_id,
        call_name=body.call_name,
        agent_id=body.agent_id,
        phone_number_id=body.phone_number_id,
        phone_provider=phone.provider,
        recipients=[],
        recipient_chunks=1,
        scheduled_time_unix=body.scheduled_time_unix,
        timezone=body.timezone,
        retry_count=body.retry_count,
        retry_delays=RetryDelays(**body.retry_delays.model_dump()) if body.retry_delays else None,
        concurrency_limit=body.concurrency_limit,
        calling_window=CallingWindow(**body.calling_window.model_dump()) if body.calling_window else None,
        ecommerce_platform=credentials.platform if credentials else None,
        ecommerce_credentials_encrypted=(
            domain.encrypt(service.settings.secret_key, credentials.model_dump()) if credentials else None
        ),
        sender_email=body.sender_email,
    )
    chunks = _chunks(
        recipients, command, service.settings.batch_chunk_size, service.settings.bus_max_message_bytes
    )
    command = command.model_copy(update={"recipients": chunks[0], "recipient_chunks": len(chunks)})
    followers = [
        AddCampaignRecipients(campaign_id=campaign_id, chunk_index=i, recipients=chunk)
        for i, chunk in enumerate(chunks[1:], start=1)
    ]

    async def stage_recipients(uow: UnitOfWork) -> None:
        await uow.recipients.add_scheduled(
            [
                {
                    "campaign_id": campaign_id,
                    "recipient_id": r.recipient_id,
                    "position": position,
                    "to_number": r.phone_number,
                    "status": "scheduled",
                    "retry_count": 0,
                }
                for position, r in enumerate(recipients)
            ]
        )

    outcome = await service.execute(
        command, topic=topics.CAMPAIGN_COMMANDS, key=campaign_id, followers=followers, stage=stage_recipients
    )
    return respond(outcome)


JobStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]


@router.get("/batch-calling", tags=["batch-calling"])
async def list_jobs(
    service: Service, page_size: PageSize = 30, cursor: str | None = None, status: JobStatus | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(
        Campaign, cursor, page_size, {"status": status} if status else None
    )
    jobs = [
        {
            "id": c.campaign_id,
            "name": c.name,
            "status": c.status,
            "total_calls_scheduled": c.total_calls_scheduled,
            "total_calls_dispatched": c.total_calls_dispatched,
            "total_calls_finished": c.total_calls_finished,
        }
        for c in rows
    ]
    return {"jobs": jobs, "cursor": next_cursor}


@router.get("/batch-calling/{job_id}", tags=["batch-calling"])
async def get_job(job_id: str, service: Service) -> dict[str, Any]:
    campaign = await service.get(Campaign, job_id, "Batch job not found")
    agent = await service.find(Agent, campaign.agent_id)
    return job_view(campaign) | {
        "agent_name": agent.name if agent else None,
        "status_reason": campaign.status_reason,
    }


CallStatus = Literal[
    "scheduled",
    "dialing",
    "in_progress",
    "completed",
    "no_answer",
    "busy",
    "failed",
    "voicemail",
    "cancelled",
    "skipped_dnc",
    "skipped_duplicate",
]


@router.get("/batch-calling/{job_id}/calls", tags=["batch-calling"])
async def job_calls(
    job_id: str,
    service: Service,
    page_size: PageSize = 30,
    cursor: str | None = None,
    status: CallStatus | None = None,
) -> dict[str, Any]:
    await service.get(Campaign, job_id, "Batch job not found")
    rows, next_cursor = await service.recipients_page(job_id, cursor, page_size, status)
    calls = [
        {
            "recipient_id": r.recipient_id,
            "to_number": r.to_number,
            "status": r.status,
            "conversation_id": r.conversation_id,
            "duration_seconds": r.duration_seconds,
            "outcome": r.outcome,
            "retry_count": r.retry_count,
            "time_zones": r.time_zones,
            "reason": r.reason,
        }
        for r in rows
    ]
    return {"calls": calls, "cursor": next_cursor}


async def _control(
    job_id: str, service: Service, command: CancelCampaign | PauseCampaign | ResumeCampaign
) -> JSONResponse:
    await service.get(Campaign, job_id, "Batch job not found")
    return respond(await service.execute(command, topic=topics.CAMPAIGN_COMMANDS, key=job_id))


@router.post("/batch-calling/{job_id}/cancel", tags=["batch-calling"])
async def cancel_job(job_id: str, service: Service) -> JSONResponse:
    return await _control(job_id, service, CancelCampaign(campaign_id=job_id))


@router.post("/batch-calling/{job_id}/pause", tags=["batch-calling"])
async def pause_job(job_id: str, service: Service) -> JSONResponse:
    return await _control(job_id, service, PauseCampaign(campaign_id=job_id))


@router.post("/batch-calling/{job_id}/resume", tags=["batch-calling"])
async def resume_job(job_id: str, service: Service) -> JSONResponse:
    return await _control(job_id, service, ResumeCampaign(campaign_id=job_id))


# ---- do-not-call list (beyond the spec) ------------------------------------------------------


@router.post("/do-not-call", tags=["do-not-call"])
async def add_do_not_call(body: DoNotCallRequest, service: Service) -> JSONResponse:
    number = domain.e164(body.phone_number)
    command = AddDoNotCall(phone_number=number, reason=body.reason)
    return respond(await service.execute(command, topic=topics.CAMPAIGN_COMMANDS, key=number))


@router.get("/do-not-call", tags=["do-not-call"])
async def list_do_not_call(
    service: Service, page_size: PageSize = 100, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(DoNotCall, cursor, page_size)
    numbers = [
        {"phone_number": d.phone_number, "reason": d.reason, "added_at_unix": d.added_at_unix} for d in rows
    ]
    return {"numbers": numbers, "cursor": next_cursor}


@router.delete("/do-not-call/{phone_number}", tags=["do-not-call"])
async def remove_do_not_call(phone_number: str, service: Service) -> JSONResponse:
    await service.get(DoNotCall, phone_number, "Number not on the do-not-call list")
    command = RemoveDoNotCall(phone_number=phone_number)
    return respond(await service.execute(command, topic=topics.CAMPAIGN_COMMANDS, key=phone_number))
