"""Conversations: ``GET /v1/convai/conversations`` and ``GET /v1/convai/conversations/{id}``.

Only the outbound calls simulated by ``lifecycle.py`` exist. List filters: ``agent_id``,
``call_start_after_unix`` / ``call_start_before_unix`` (inclusive), ``call_successful``; newest
first (``sort_direction=asc`` for oldest first), cursor-paged. Unknown id → 404
``conversation_not_found``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from elevenlabs_sim import lifecycle
from elevenlabs_sim.deps import State
from elevenlabs_sim.errors import not_found
from elevenlabs_sim.pagination import paginate

router = APIRouter(prefix="/v1/convai/conversations", tags=["conversations"])


@router.get("")
async def list_conversations(
    state: State,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    agent_id: str | None = None,
    call_start_after_unix: int | None = None,
    call_start_before_unix: int | None = None,
    call_successful: Literal["success", "failure", "unknown"] | None = None,
    user_id: str | None = None,
    sort_direction: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    records = state.conversations.values()
    if agent_id:
        records = [r for r in records if r.data["agent_id"] == agent_id]
    if user_id is not None:
        records = [r for r in records if r.data.get("user_id") == user_id]
    if call_start_after_unix is not None:
        records = [r for r in records if r.data["metadata"]["start_time_unix_secs"] >= call_start_after_unix]
    if call_start_before_unix is not None:
        records = [r for r in records if r.data["metadata"]["start_time_unix_secs"] <= call_start_before_unix]
    if call_successful is not None:
        records = [
            r
            for r in records
            if (r.data.get("analysis") or {}).get("call_successful", "unknown") == call_successful
        ]
    page = paginate(records, page_size=page_size, cursor=cursor, descending=sort_direction == "desc")
    return {
        "conversations": [lifecycle.conversation_summary(r) for r in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }


@router.get("/{conversation_id}")
async def get_conversation(conversation_id: str, state: State, format: str | None = None) -> dict[str, Any]:
    record = state.conversations.get(conversation_id)
    if record is None:
        raise not_found("conversation", "Conversation not found")
    return lifecycle.conversation_response(record)
