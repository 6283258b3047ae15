"""Phone numbers: ``/v1/convai/phone-numbers``.

Approximations:

* Import (POST) accepts the Twilio and SIP-trunk shapes (validated against the spec's ``anyOf``);
  the Exotel shape validates too but is stored as-is. An ``agent_id`` (on import or PATCH) naming
  an unknown agent gives 404 ``agent_not_found``, like the agents router.
* Secrets are stored but never returned: no Twilio ``token`` (nor ``region_config.token``), no SIP
  ``credentials.password``. Trunk responses report ``has_auth_credentials`` and ``username``.
  Tests read the stored secrets via ``GET /_sim/phone-numbers/{id}/secrets``.
* PATCH ``agent_id: null`` unassigns the agent; trunk configs replace the stored ones whole.
* List is the v1 bare JSON array (not paged), filtered by ``provider`` and ``agent_id``.
* DELETE answers 200 ``{}``. Unknown ids → 404 ``phone_number_not_found``.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter

from elevenlabs_sim import openapi
from elevenlabs_sim.deps import JsonBody, State
from elevenlabs_sim.errors import not_found
from elevenlabs_sim.routers.agents import get_agent_record
from elevenlabs_sim.state import Record, SimState, now_unix

router = APIRouter(prefix="/v1/convai/phone-numbers", tags=["phone numbers"])

_SIP_DEFAULTS = {"transport": "auto", "media_encryption": "allowed"}


def _public_trunk(config: dict[str, Any] | None, *, outbound: bool) -> dict[str, Any] | None:
    if config is None:
        return None
    public = {k: copy.deepcopy(v) for k, v in config.items() if k != "credentials"}
    credentials = config.get("credentials") or None
    public["has_auth_credentials"] = bool(credentials and credentials.get("password"))
    public["username"] = credentials.get("username") if credentials else None
    public.setdefault("media_encryption", "allowed")
    public.setdefault("attributes_to_headers", {})
    if outbound:
        public.setdefault("transport", "auto")
        public.setdefault("headers", {})
        public.setdefault("enabled_codecs", [])
        public["has_outbound_trunk"] = True
    else:
        public.setdefault("allowed_addresses", [])
        public.setdefault("allowed_numbers", None)
        public.setdefault("remote_domains", None)
    return public


def assigned_agent(state: SimState, record: Record) -> dict[str, Any] | None:
    agent_id = record.data.get("agent_id")
    agent = state.agents.get(agent_id) if agent_id else None
    if agent is None:
        return None
    return {
        "agent_id": agent.id,
        "agent_name": agent.data.get("name", ""),
        "environment": record.data.get("environment"),
        "branch_id": record.data.get("branch_id"),
    }


def phone_response(state: SimState, record: Record) -> dict[str, Any]:
    data = record.data
    provider = data["provider"]
    response: dict[str, Any] = {
        "phone_number": data["phone_number"],
        "label": data["label"],
        "supports_inbound": data.get("supports_inbound", True),
        "supports_outbound": data.get("supports_outbound", True),
        "phone_number_id": record.id,
        "assigned_agent": assigned_agent(state, record),
        "provider": provider,
    }
    if provider == "sip_trunk":
        outbound = _public_trunk(data.get("outbound_trunk_config"), outbound=True)
        response.update(
            {
                "provider_config": outbound,
                "outbound_trunk": outbound,
                "inbound_trunk": _public_trunk(data.get("inbound_trunk_config"), outbound=False),
                "livekit_stack": data.get("livekit_stack") or "standard",
                "store_sip_messages": bool(data.get("store_sip_messages", False)),
            }
        )
    return response


def get_phone_record(state: SimState, phone_number_id: str) -> Record:
    record = state.phone_numbers.get(phone_number_id)
    if record is None:
        raise not_found("phone_number", "Phone number not found")
    return record


def phone_secrets(record: Record) -> dict[str, Any]:
    """Everything the responses withhold; for ``GET /_sim/phone-numbers/{id}/secrets``."""
    data = record.data

    def creds(key: str) -> dict[str, Any] | None:
        config = data.get(key) or {}
        credentials = config.get("credentials")
        return copy.deepcopy(credentials) if credentials else None

    region = data.get("region_config") or {}
    return {
        "phone_number_id": record.id,
        "provider": data["provider"],
        "sid": data.get("sid"),
        "token": data.get("token"),
        "region_token": region.get("token"),
        "inbound_credentials": creds("inbound_trunk_config"),
        "outbound_credentials": creds("outbound_trunk_config"),
    }


@router.post("")
async def import_phone_number(body: JsonBody, state: State) -> dict[str, str]:
    if body.get("agent_id"):
        get_agent_record(state, body["agent_id"])
    data = openapi.deep_merge({}, body)
    data.setdefault("provider", "twilio")
    record = state.add(state.phone_numbers, state.new_id("phnum"), data)
    return {"phone_number_id": record.id}


@router.get("")
async def list_phone_numbers(
    state: State, provider: str | None = None, agent_id: str | None = None, branch_id: str | None = None
) -> list[dict[str, Any]]:
    records = state.phone_numbers.values()
    if provider:
        records = [r for r in records if r.data["provider"] == provider]
    if agent_id:
        records = [r for r in records if r.data.get("agent_id") == agent_id]
    return [phone_response(state, r) for r in records]


@router.get("/{phone_number_id}")
async def get_phone_number(phone_number_id: str, state: State) -> dict[str, Any]:
    return phone_response(state, get_phone_record(state, phone_number_id))


@router.patch("/{phone_number_id}")
async def patch_phone_number(phone_number_id: str, body: JsonBody, state: State) -> dict[str, Any]:
    record = get_phone_record(state, phone_number_id)
    if body.get("agent_id"):
        get_agent_record(state, body["agent_id"])
    data = record.data
    if "agent_id" in body:
        data["agent_id"] = body["agent_id"]
    for key in (
        "label",
        "inbound_trunk_config",
        "outbound_trunk_config",
        "livekit_stack",
        "store_sip_messages",
        "environment",
        "branch_id",
    ):
        if body.get(key) is not None:
            data[key] = copy.deepcopy(body[key])
    record.updated_at = now_unix()
    return phone_response(state, record)


@router.delete("/{phone_number_id}")
async def delete_phone_number(phone_number_id: str, state: State) -> dict[str, Any]:
    get_phone_record(state, phone_number_id)
    state.phone_numbers.delete(phone_number_id)
    return {}
