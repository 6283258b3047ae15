"""Workspace tools: ``/v1/convai/tools``.

Approximations: ``search`` matches a case-insensitive substring of the name (upstream documents
a prefix match); ``usage_stats`` are always zero; ``tool_config`` is stored as sent and echoed
with the defaults of the response schema filled in. A tool whose ``request_headers`` reference an
unknown ``secret_id`` is rejected with 422 ``invalid_secret_ids``. Deleting a tool that agents
still use needs ``force=true`` (409 ``tool_has_dependent_agents`` otherwise); with force it is
removed from those agents' ``tool_ids``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from elevenlabs_sim import openapi, relations
from elevenlabs_sim.deps import JsonBody, State
from elevenlabs_sim.errors import api_error, not_found
from elevenlabs_sim.pagination import paginate
from elevenlabs_sim.shapes import access_info, dependent_agent
from elevenlabs_sim.state import Record, SimState, now_unix

router = APIRouter(prefix="/v1/convai/tools", tags=["tools"])


def tool_response(record: Record) -> dict[str, Any]:
    response = {
        "id": record.id,
        "tool_config": record.data["tool_config"],
        "access_info": access_info(),
        "usage_stats": {"total_calls": 0, "avg_latency_secs": 0.0},
        "response_mocks": record.data.get("response_mocks"),
    }
    # Defaults come from the response schema: some request-only fields must not be echoed.
    return openapi.with_defaults("ToolResponseModel", response)


def _get(state: SimState, tool_id: str) -> Record:
    record = state.tools.get(tool_id)
    if record is None:
        raise not_found("tool", "Tool not found")
    return record


@router.post("")
async def create_tool(body: JsonBody, state: State) -> dict[str, Any]:
    relations.check_tool_references(state, body["tool_config"])
    record = state.add(state.tools, state.new_id("tool"), body)
    return tool_response(record)


@router.get("")
async def list_tools(
    state: State,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    search: str | None = None,
    types: Annotated[list[str] | None, Query()] = None,
    sort_by: Literal["name", "created_at"] | None = None,
    sort_direction: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    records = state.tools.values()
    if search:
        needle = search.lower()
        records = [r for r in records if needle in str(r.data["tool_config"].get("name", "")).lower()]
    if types:
        records = [r for r in records if r.data["tool_config"].get("type") in types]
    key = (lambda r: str(r.data["tool_config"].get("name", ""))) if sort_by == "name" else None
    page = paginate(records, page_size=page_size, cursor=cursor, key=key, descending=sort_direction == "desc")
    return {
        "tools": [tool_response(r) for r in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }


@router.get("/{tool_id}")
async def get_tool(tool_id: str, state: State) -> dict[str, Any]:
    return tool_response(_get(state, tool_id))


@router.patch("/{tool_id}")
async def update_tool(tool_id: str, body: JsonBody, state: State) -> dict[str, Any]:
    record = _get(state, tool_id)
    relations.check_tool_references(state, body["tool_config"])
    data = dict(body)
    if "response_mocks" not in body:
        data["response_mocks"] = record.data.get("response_mocks")
    record.data = data
    record.updated_at = now_unix()
    return tool_response(record)


@router.delete("/{tool_id}")
async def delete_tool(tool_id: str, state: State, force: bool = False) -> dict[str, Any]:
    _get(state, tool_id)
    if relations.agents_using_tool(state, tool_id):
        if not force:
            raise api_error(
                409,
                "tool_has_dependent_agents",
                "Tool is used by agents; remove it from them first or delete with force=true",
            )
        relations.detach_tool(state, tool_id)
    state.tools.delete(tool_id)
    return {}


@router.get("/{tool_id}/dependent-agents")
async def tool_dependent_agents(
    tool_id: str,
    state: State,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
) -> dict[str, Any]:
    _get(state, tool_id)
    page = paginate(relations.agents_using_tool(state, tool_id), page_size=page_size, cursor=cursor)
    return {
        "agents": [dependent_agent(a) for a in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }
