"""Workspace secrets: ``/v1/convai/secrets``.

Values are kept in memory (never returned) so that tool invocation (``tool_invocation.py``) can resolve
``{"secret_id": ...}`` headers via :func:`secret_value`. Deleting a secret that tools still
reference is rejected with 409 ``secret_in_use``, as upstream refuses to orphan references.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from elevenlabs_sim import relations
from elevenlabs_sim.deps import JsonBody, State
from elevenlabs_sim.errors import api_error, not_found
from elevenlabs_sim.pagination import paginate
from elevenlabs_sim.state import Record, SimState, now_unix

router = APIRouter(prefix="/v1/convai/secrets", tags=["secrets"])


def secret_value(state: SimState, secret_id: str) -> str | None:
    record = state.secrets.get(secret_id)
    return None if record is None else str(record.data["value"])


def _summary(state: SimState, record: Record) -> dict[str, Any]:
    tools = relations.tools_using_secret(state, record.id)
    return {
        "type": "stored",
        "secret_id": record.id,
        "name": record.data["name"],
        "used_by": {
            "tools": [
                {
                    "type": "available",
                    "id": t.id,
                    "name": t.data["tool_config"].get("name", ""),
                    "created_at_unix_secs": t.created_at,
                    "access_level": "admin",
                }
                for t in tools
            ],
            "tools_has_more": False,
            "agents": [],
            "agents_has_more": False,
            "phone_numbers": [],
            "phone_numbers_has_more": False,
            "mcp_servers": [],
        },
    }


def _get(state: SimState, secret_id: str) -> Record:
    record = state.secrets.get(secret_id)
    if record is None:
        raise not_found("secret", "Secret not found")
    return record


@router.post("")
async def create_secret(body: JsonBody, state: State) -> dict[str, Any]:
    record = state.add(state.secrets, state.new_id("secret"), {"name": body["name"], "value": body["value"]})
    return {"type": "stored", "secret_id": record.id, "name": record.data["name"]}


@router.get("")
async def list_secrets(
    state: State,
    page_size: Annotated[int | None, Query(ge=1, le=100)] = None,
    cursor: str | None = None,
    search: str | None = None,
) -> dict[str, Any]:
    records = state.secrets.values()
    if search:
        records = [r for r in records if str(r.data["name"]).lower().startswith(search.lower())]
    # Upstream returns every secret when page_size is omitted.
    page = paginate(records, page_size=page_size or max(len(records), 1), cursor=cursor)
    return {"secrets": [_summary(state, r) for r in page.items], "next_cursor": page.next_cursor}


@router.get("/{secret_id}")
async def get_secret(secret_id: str, state: State) -> dict[str, Any]:
    return _summary(state, _get(state, secret_id))


@router.patch("/{secret_id}")
async def update_secret(secret_id: str, body: JsonBody, state: State) -> dict[str, Any]:
    record = _get(state, secret_id)
    record.data.update({k: body[k] for k in ("name", "value") if k in body})
    record.updated_at = now_unix()
    return {"type": "stored", "secret_id": record.id, "name": record.data["name"]}


@router.delete("/{secret_id}", status_code=204)
async def delete_secret(secret_id: str, state: State) -> Response:
    _get(state, secret_id)
    if relations.tools_using_secret(state, secret_id):
        raise api_error(409, "secret_in_use", "Secret is used by tools and cannot be deleted")
    state.secrets.delete(secret_id)
    return Response(status_code=204)
