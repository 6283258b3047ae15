"""Test-control API for telephony under ``/_sim`` (no auth): runtime config, the call log and
stats, stored phone-number secrets, webhook tool calls, webhook deliveries and replays. Keep it stable."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from elevenlabs_sim import lifecycle
from elevenlabs_sim.deps import State
from elevenlabs_sim.errors import api_error
from elevenlabs_sim.routers.phone_numbers import get_phone_record, phone_secrets

router = APIRouter(prefix="/_sim", tags=["simulator control"])


class CarrierAnswer(BaseModel):
    model_config = {"extra": "forbid"}

    sip_status_code: int = Field(ge=100, le=699)
    call_status: str | None = None  # Twilio CallStatus; default: derived from the SIP code


class CalleeRequest(BaseModel):
    """The callee asks for something a tool does (call me back, stop calling me)."""

    model_config = {"extra": "forbid"}

    tool: str = Field(min_length=1, description="Name of the agent's webhook tool that is called.")
    says: str = Field(default="", description="The callee's words, a user turn before the tool call.")
    params: dict[str, Any] = Field(default_factory=dict, description="Values of its LLM-filled parameters.")
    once: bool = Field(default=False, description="Only in the next call to the number (then forgotten).")
    asked: bool = Field(default=False, description="Set by the simulator once a `once` request was made.")


class ConfigPatch(BaseModel):
    model_config = {"extra": "forbid"}

    call_duration_ms: int | None = Field(default=None, ge=0)
    ring_ms: int | None = Field(default=None, ge=0)
    processing_ms: int | None = Field(default=None, ge=0)
    max_concurrent_calls: int | None = Field(default=None, ge=0)
    webhook_retries: int | None = Field(default=None, ge=0)
    webhook_retry_delays_ms: list[int] | None = None
    refuse_number_suffix: str | None = None
    answered_outcome: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    transcript_padding_turns: int | None = Field(default=None, ge=0)
    audio_bytes: int | None = Field(default=None, ge=0)
    webhook_events: list[str] | None = None
    invoke_tools: bool | None = None
    tool_value_overrides: dict[str, Any] | None = None
    dial_refusals: dict[str, str] | None = None
    carrier_answers: dict[str, CarrierAnswer] | None = None
    callee_requests: dict[str, list[CalleeRequest]] | None = None
    tools_on_request: list[str] | None = None
    data_collection_values: dict[str, dict[str, Any]] | None = None


@router.get("/config")
async def get_config(state: State) -> dict[str, Any]:
    return state.config.describe()


@router.post("/config")
async def patch_config(patch: ConfigPatch, state: State) -> dict[str, Any]:
    # Only the fields sent change; an explicit null clears the nullable webhook_* overrides and
    # tool_value_overrides (which is replaced as a whole, not merged).
    for key in patch.model_fields_set:
        value = getattr(patch, key)
        replaced = {"tool_value_overrides", "dial_refusals", "carrier_answers", "callee_requests"}
        if key in replaced | {"data_collection_values"} and value is None:
            value = {}
        elif key == "tools_on_request" and value is None:
            value = []
        elif key == "carrier_answers":
            value = {number: answer.model_dump() for number, answer in value.items()}
        elif key == "callee_requests":
            value = {number: [r.model_dump() for r in asks] for number, asks in value.items()}
        elif value is None and key not in {"webhook_url", "webhook_secret", "webhook_events"}:
            continue
        setattr(state.config, key, value)
    return state.config.describe()


@router.get("/phone-numbers/{phone_number_id}/secrets")
async def get_phone_secrets(phone_number_id: str, state: State) -> dict[str, Any]:
    return phone_secrets(get_phone_record(state, phone_number_id))


@router.get("/calls")
async def list_calls(state: State, to_number: str | None = None) -> dict[str, Any]:
    calls = list(state.calls.calls.values())
    refusals = state.calls.refusals
    if to_number:
        calls = [c for c in calls if c["to_number"] == to_number]
        refusals = [r for r in refusals if r["to_number"] == to_number]
    return {"calls": calls, "refusals": refusals}


@router.get("/calls/stats")
async def call_stats(state: State) -> dict[str, Any]:
    tracker = state.calls
    return {
        "dials_by_number": dict(tracker.dials_by_number),
        "max_concurrent_observed": tracker.max_concurrent_observed,
        "in_progress": tracker.in_progress,
        "total_dials": sum(tracker.dials_by_number.values()),
        "refused": sum(1 for r in tracker.refusals if r["reason"] == "refused"),
        "carrier_refused": sum(1 for r in tracker.refusals if r["reason"] == "carrier"),
        "rate_limited": sum(1 for r in tracker.refusals if r["reason"] == "too_many_concurrent_requests"),
    }


@router.get("/webhooks/deliveries")
async def list_deliveries(
    state: State, conversation_id: str | None = None, type: str | None = None
) -> dict[str, Any]:
    deliveries = state.calls.deliveries
    if conversation_id:
        deliveries = [d for d in deliveries if d["conversation_id"] == conversation_id]
    if type:
        deliveries = [d for d in deliveries if d["type"] == type]
    return {"deliveries": deliveries}


@router.get("/tool-calls")
async def list_tool_calls(state: State, conversation_id: str | None = None) -> dict[str, Any]:
    tool_calls = state.calls.tool_calls
    if conversation_id:
        tool_calls = [t for t in tool_calls if t["conversation_id"] == conversation_id]
    return {"tool_calls": tool_calls}


@router.post("/webhooks/redeliver/{conversation_id}")
async def redeliver(conversation_id: str, state: State, type: str | None = None) -> dict[str, Any]:
    sent = state.calls.last_delivery.get(conversation_id, [])
    if type:
        sent = [d for d in sent if d.type == type]
    if not sent:
        raise api_error(404, "delivery_not_found", "No webhook was delivered for this conversation")
    log = await lifecycle.send_delivery(state.calls, sent[-1], retries=0, replay=True)
    return {"delivery": log}
