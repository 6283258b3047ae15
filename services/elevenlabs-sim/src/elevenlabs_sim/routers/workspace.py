"""Workspace webhooks (``/v1/workspace/webhooks``) and ConvAI settings (``/v1/convai/settings``).

The webhook secret is kept so the later post-call webhook sender can sign deliveries with it.
DELETE removes a webhook (and unhooks it from the settings). PATCH of a webhook sets its name, whether
it is disabled (no deliveries then) and whether failed ``post_call_transcription`` deliveries are
retried (``retry_enabled``, off by default: see ``lifecycle.RETRY_DELAYS_MS``). PATCH of the settings
deep-merges into the stored settings; pointing ``webhooks.post_call_webhook_id`` at an unknown webhook
gives 404 ``webhook_not_found``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from elevenlabs_sim import openapi
from elevenlabs_sim.deps import JsonBody, State
from elevenlabs_sim.errors import not_found
from elevenlabs_sim.state import Record, SimState

webhooks_router = APIRouter(prefix="/v1/workspace/webhooks", tags=["workspace"])
settings_router = APIRouter(prefix="/v1/convai/settings", tags=["settings"])


def _webhook_response(state: SimState, record: Record) -> dict[str, Any]:
    in_use = state.convai_settings.get("webhooks", {}).get("post_call_webhook_id") == record.id
    return {
        "name": record.data["name"],
        "webhook_id": record.id,
        "webhook_url": record.data["webhook_url"],
        "is_disabled": bool(record.data.get("is_disabled", False)),
        "is_auto_disabled": False,
        "created_at_unix": record.created_at,
        "auth_type": record.data["auth_type"],
        "usage": [{"usage_type": "ConvAI Settings"}] if in_use else [],
        "most_recent_failure_error_code": None,
        "most_recent_failure_timestamp": None,
    }


@webhooks_router.post("")
async def create_webhook(body: JsonBody, state: State) -> dict[str, Any]:
    settings = body["settings"]
    secret = state.new_webhook_secret()
    data = {
        "name": settings["name"],
        "webhook_url": settings["webhook_url"],
        "auth_type": settings["auth_type"],
        "request_headers": settings.get("request_headers") or {},
        "secret": secret,
    }
    record = state.add(state.workspace_webhooks, state.new_webhook_id(), data)
    return {"webhook_id": record.id, "webhook_secret": secret}


@webhooks_router.get("")
async def list_webhooks(state: State, include_usages: bool = False) -> dict[str, Any]:
    return {"webhooks": [_webhook_response(state, r) for r in state.workspace_webhooks.values()]}


@webhooks_router.patch("/{webhook_id}")
async def patch_webhook(webhook_id: str, body: JsonBody, state: State) -> dict[str, Any]:
    record = state.workspace_webhooks.get(webhook_id)
    if record is None:
        raise not_found("webhook", "Webhook not found")
    record.data["name"] = body["name"]
    record.data["is_disabled"] = bool(body["is_disabled"])
    for field in ("retry_enabled", "request_headers"):
        if body.get(field) is not None:
            record.data[field] = body[field]
    return {"status": "ok"}


@webhooks_router.delete("/{webhook_id}")
async def delete_webhook(webhook_id: str, state: State) -> dict[str, Any]:
    if state.workspace_webhooks.delete(webhook_id) is None:
        raise not_found("webhook", "Webhook not found")
    webhooks = state.convai_settings.get("webhooks") or {}
    if webhooks.get("post_call_webhook_id") == webhook_id:
        webhooks["post_call_webhook_id"] = None
    return {"status": "ok"}


@settings_router.get("")
async def get_settings(state: State) -> dict[str, Any]:
    return state.convai_settings


@settings_router.patch("")
async def patch_settings(body: JsonBody, state: State) -> dict[str, Any]:
    webhook_id = (body.get("webhooks") or {}).get("post_call_webhook_id")
    if webhook_id is not None and state.workspace_webhooks.get(webhook_id) is None:
        raise not_found("webhook", "Webhook not found")
    state.convai_settings = openapi.deep_merge(state.convai_settings, body)
    return state.convai_settings
