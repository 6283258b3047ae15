"""Agents: ``/v1/convai/agents``.

Approximations:

* ``conversation_config`` and ``platform_settings`` are stored as sent; responses fill in every
  default of the response schema (nested models included), so GET returns a full config as
  upstream does (``agent.first_message`` "", ``agent.language`` "en", ``tts.voice_id``, ...).
* PATCH deep-merges ``conversation_config`` / ``platform_settings`` into the stored ones (objects
  merge key by key; lists and scalars replace) and validates the merged result against the
  request schemas, so an invalid partial update is a 422 with ``loc`` inside the merged config.
* Referential checks: ``conversation_config.agent.prompt.tool_ids`` naming an unknown tool gives
  422 ``{"detail": {"status": "invalid_tool_ids", ...}}``; a ``knowledge_base[].id`` naming an
  unknown document gives 422 ``invalid_knowledge_base_ids``.
* No versions or branches: ``version_id``/``branch_id`` are accepted and ignored.
* DELETE answers 204. Archiving is ``platform_settings.archived`` (used by the list filter).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError

from elevenlabs_sim import openapi, relations
from elevenlabs_sim.deps import JsonBody, State
from elevenlabs_sim.errors import not_found
from elevenlabs_sim.pagination import paginate
from elevenlabs_sim.shapes import access_info
from elevenlabs_sim.state import Record, SimState, now_unix

router = APIRouter(prefix="/v1/convai/agents", tags=["agents"])

_CONVERSATION_CONFIG = "ConversationalConfigAPIModel-Input"
_PLATFORM_SETTINGS = "AgentPlatformSettingsRequestModel"


def agent_response(record: Record) -> dict[str, Any]:
    data = record.data
    response: dict[str, Any] = {
        "agent_id": record.id,
        "name": data["name"],
        "conversation_config": data["conversation_config"],
        "metadata": {"created_at_unix_secs": record.created_at, "updated_at_unix_secs": record.updated_at},
        "platform_settings": data["platform_settings"],
        "phone_numbers": [],
        "whatsapp_accounts": [],
        "access_info": access_info(),
        "tags": data["tags"],
        "version_id": None,
        "branch_id": None,
        "main_branch_id": None,
    }
    if data.get("workflow") is not None:
        response["workflow"] = data["workflow"]
    return openapi.with_defaults("GetAgentResponseModel", response)


def _summary(record: Record) -> dict[str, Any]:
    return {
        "agent_id": record.id,
        "name": record.data["name"],
        "tags": record.data["tags"],
        "created_at_unix_secs": record.created_at,
        "access_info": access_info(),
        "last_call_time_unix_secs": record.data.get("last_call_time_unix_secs"),
        "archived": bool(record.data["platform_settings"].get("archived", False)),
    }


def get_agent_record(state: SimState, agent_id: str) -> Record:
    record = state.agents.get(agent_id)
    if record is None:
        raise not_found("agent", "Agent not found")
    return record


def _validate_merged(conversation_config: dict[str, Any], platform_settings: dict[str, Any]) -> None:
    errors = openapi.validate_component(
        _CONVERSATION_CONFIG, conversation_config, ["body", "conversation_config"]
    )
    errors += openapi.validate_component(_PLATFORM_SETTINGS, platform_settings, ["body", "platform_settings"])
    if errors:
        raise RequestValidationError(errors)


@router.post("/create")
async def create_agent(body: JsonBody, state: State) -> dict[str, str]:
    conversation_config = body["conversation_config"]
    platform_settings = body.get("platform_settings") or {}
    relations.check_agent_references(state, conversation_config)
    data = {
        "name": body.get("name") or "",
        "tags": body.get("tags") or [],
        "conversation_config": conversation_config,
        "platform_settings": platform_settings,
        "workflow": body.get("workflow"),
    }
    record = state.add(state.agents, state.new_id("agent"), data)
    return {"agent_id": record.id}


@router.get("")
async def list_agents(
    state: State,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    search: str | None = None,
    archived: bool | None = False,
    sort_by: Literal["name", "created_at", "call_count_7d"] | None = None,
    sort_direction: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    records = state.agents.values()
    if search:
        records = [r for r in records if search.lower() in str(r.data["name"]).lower()]
    if archived is not None:
        records = [r for r in records if bool(r.data["platform_settings"].get("archived", False)) == archived]
    key = (lambda r: str(r.data["name"])) if sort_by == "name" else None
    page = paginate(records, page_size=page_size, cursor=cursor, key=key, descending=sort_direction == "desc")
    return {
        "agents": [_summary(r) for r in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }


@router.get("/{agent_id}")
async def get_agent(
    agent_id: str, state: State, version_id: str | None = None, branch_id: str | None = None
) -> dict[str, Any]:
    return agent_response(get_agent_record(state, agent_id))


@router.patch("/{agent_id}")
async def patch_agent(agent_id: str, body: JsonBody, state: State) -> dict[str, Any]:
    record = get_agent_record(state, agent_id)
    data = record.data
    conversation_config = data["conversation_config"]
    platform_settings = data["platform_settings"]
    if body.get("conversation_config") is not None:
        conversation_config = openapi.deep_merge(conversation_config, body["conversation_config"])
    if body.get("platform_settings") is not None:
        platform_settings = openapi.deep_merge(platform_settings, body["platform_settings"])
    _validate_merged(conversation_config, platform_settings)
    relations.check_agent_references(state, conversation_config)
    data["conversation_config"] = conversation_config
    data["platform_settings"] = platform_settings
    if body.get("name") is not None:
        data["name"] = body["name"]
    if body.get("tags") is not None:
        data["tags"] = body["tags"]
    if body.get("workflow") is not None:
        data["workflow"] = body["workflow"]
    record.updated_at = now_unix()
    return agent_response(record)


@router.delete("/{agent_id}", status_code=204)
async def delete_agent(agent_id: str, state: State) -> Response:
    get_agent_record(state, agent_id)
    state.agents.delete(agent_id)
    return Response(status_code=204)
