"""Outbound calls: ``POST /v1/convai/twilio/outbound-call`` and ``/v1/convai/sip-trunk/outbound-call``.

Approximations (upstream's behaviour for failed dials is unconfirmed; these are our choices):

* Unknown ``agent_id`` → 404 ``agent_not_found``; unknown ``agent_phone_number_id`` → 404
  ``phone_number_not_found``; a number of the other provider (e.g. a SIP-trunk number on the
  Twilio route) → 400 ``{"detail":{"status":"phone_number_provider_mismatch",...}}``; a
  ``to_number`` that is not E.164 (``+`` then 2..15 digits) → 422 with ``loc ["body","to_number"]``.
* A dial the provider refuses is 200 with ``success: false`` and null ids (``callSid`` /
  ``sip_call_id``): this happens when ``to_number`` ends in ``refuse_number_suffix`` (default
  "0000"; settable via ``POST /_sim/config``), and with the carrier's own message when
  ``dial_refusals`` names the calling ``agent_phone_number_id`` or the ``to_number`` (e.g.
  "HTTP 401 error: Unable to create record: Authenticate" for bad Twilio credentials: ElevenLabs
  passes Twilio's REST error on). No conversation is created.
* With ``max_concurrent_calls`` > 0, a dial while that many calls are ringing or talking → 429
  ``{"detail":{"status":"too_many_concurrent_requests",...}}`` without ``Retry-After`` (ElevenLabs
  is not known to send one); an injected 429 fault is ``system_busy`` (the platform, not our plan).
* Everything after the dial (ringing, outcome by last digit, webhooks) is in ``lifecycle.py``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from elevenlabs_sim import lifecycle
from elevenlabs_sim.deps import JsonBody, State
from elevenlabs_sim.errors import api_error
from elevenlabs_sim.routers.agents import get_agent_record
from elevenlabs_sim.routers.phone_numbers import get_phone_record
from elevenlabs_sim.state import SimState

twilio_router = APIRouter(prefix="/v1/convai/twilio", tags=["outbound calls"])
sip_router = APIRouter(prefix="/v1/convai/sip-trunk", tags=["outbound calls"])

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def _dial(state: SimState, body: dict[str, Any], provider: str, id_key: str) -> dict[str, Any] | JSONResponse:
    to_number = body["to_number"]
    if not _E164.match(to_number):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ["body", "to_number"],
                    "msg": "Value error, to_number must be an E.164 phone number",
                    "input": to_number,
                }
            ]
        )
    agent = get_agent_record(state, body["agent_id"])
    phone = get_phone_record(state, body["agent_phone_number_id"])
    if phone.data["provider"] != provider:
        raise api_error(
            400,
            "phone_number_provider_mismatch",
            f"Phone number {phone.id} is a {phone.data['provider']} number, not {provider}",
        )
    tracker = state.calls
    config = state.config
    refusal = {"to_number": to_number, "timestamp": time.time(), "request": body}
    if config.max_concurrent_calls and tracker.in_progress >= config.max_concurrent_calls:
        tracker.refusals.append({**refusal, "reason": "too_many_concurrent_requests"})
        return JSONResponse(
            {
                "detail": {
                    "status": "too_many_concurrent_requests",
                    "message": f"Too many concurrent calls (limit {config.max_concurrent_calls}); retry later",
                }
            },
            status_code=429,
        )
    if config.refuse_number_suffix and to_number.endswith(config.refuse_number_suffix):
        tracker.refusals.append({**refusal, "reason": "refused"})
        return {
            "success": False,
            "message": f"Failed to initiate call to {to_number}: the number cannot be dialled",
            "conversation_id": None,
            id_key: None,
        }
    message = config.dial_refusals.get(phone.id) or config.dial_refusals.get(to_number)
    if message is not None:
        tracker.refusals.append({**refusal, "reason": "carrier"})
        return {"success": False, "message": message, "conversation_id": None, id_key: None}
    conversation_id, call_id = lifecycle.start_call(
        state, provider=provider, agent=agent, phone=phone, body=body
    )
    return {"success": True, "message": "Success", "conversation_id": conversation_id, id_key: call_id}


@twilio_router.post("/outbound-call", response_model=None)
async def twilio_outbound_call(body: JsonBody, state: State) -> dict[str, Any] | JSONResponse:
    return _dial(state, body, "twilio", "callSid")


@sip_router.post("/outbound-call", response_model=None)
async def sip_trunk_outbound_call(body: JsonBody, state: State) -> dict[str, Any] | JSONResponse:
    return _dial(state, body, "sip_trunk", "sip_call_id")
