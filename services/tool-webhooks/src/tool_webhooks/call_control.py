"""The call-control tools: what a callee asks for during a call, turned into campaign commands.

- `opt_out` (`/webhook/calls/opt-out`): "do not call me again". At once, `do_not_call.add` with the
  conversation (source `voice`) goes to the campaigns service: the number joins the do-not-call
  list, the call's campaign recipient ends as `opted_out`, no campaign dials it again and
  `do_not_call.added` tells other systems.
- `schedule_callback` (`/webhook/calls/callback`): "call me back then". The time is read in the
  callee's zone (`callback_time`), moved into the campaign's calling window, and sent as
  `campaign.schedule_callback`; the answer says what was booked, so the agent can confirm it.

ElevenLabs may call a tool again for the same request: each command's `message_id` is derived from
the conversation (and, for a callback, the booked time), so the campaigns inbox applies it once.
The number comes from the conversation's `CallPlaced` projection, else from the
`system__called_number` variable the tool sends (a call whose projection is still on its way).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from bus.context import current_correlation_id
from contracts import topics
from contracts.calling import normalize_number, recipient_time_zones
from contracts.campaigns import AddDoNotCall, CallingWindow, ScheduleCallback
from contracts.quiet_hours import RULES_FILE, load_rules
from contracts.telephony import CallPlaced
from tool_webhooks import callback_time, metrics
from tool_webhooks.settings import Settings
from tool_webhooks.uow import UnitOfWork

log = structlog.get_logger("tool_webhooks.call_control")

ToolAnswer = dict[str, Any]
_NAMESPACE = uuid.UUID("5d7e2f0b-8a31-4c3e-b0d5-6f1e9c2a4b77")
OPTED_OUT_MESSAGE = "Done: this number will not be called again."
NO_CALL_MESSAGE = "I couldn't find this call, so I couldn't record that. Please tell the person we are sorry."


def call_of(event: CallPlaced) -> dict[str, Any]:
    """What the call-control tools keep of a placed call (the conversation row's `call`)."""
    info = event.customer_info
    return {
        "to_number": event.to_number,
        "agent_id": event.agent_id,
        "phone_number_id": event.phone_number_id,
        "provider": event.provider,
        "campaign_id": event.campaign_id,
        "recipient_id": event.recipient_id,
        "dynamic_variables": event.dynamic_variables,
        "calling_window": event.calling_window.model_dump() if event.calling_window else None,
        "time_zones": event.time_zones,
        "customer_name": info.name if info else None,
        "customer_email": info.email if info else None,
    }


def _text(value: Any, limit: int = 500) -> str | None:
    return value.strip()[:limit] if isinstance(value, str) and value.strip() else None


def _answer(success: bool, message: str, error: str | None = None, **extra: Any) -> ToolAnswer:
    answer: ToolAnswer = {"success": success, "message": message, **extra}
    if error is not None:
        answer["error"] = error
    metrics.TOOL_CALLS.labels("call_control", error or "ok").inc()
    return answer


class CallControl:
    """The opt-out and callback tools (their token is checked by the route before they run)."""

    def __init__(
        self, uow: Callable[[], UnitOfWork], settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._uow = uow
        self._settings = settings
        self._clock = clock
        self._quiet_hours = load_rules(settings.quiet_hours_file or RULES_FILE)

    async def _call(self, conversation_id: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        async with self._uow() as uow:
            conversation = await uow.conversations.get(conversation_id)
        if conversation is not None and conversation.call:
            return dict(conversation.call)
        # What ElevenLabs says the callee's number is: used only when it is a valid E.164 number.
        number, _ = normalize_number(_text(body.get("called_number"), 64) or "")
        return {"to_number": number} if number else None

    async def opt_out(self, body: Mapping[str, Any]) -> ToolAnswer:
        """`{conversation_id, called_number?, reason?}` → `do_not_call.add` (source voice), once."""
        conversation_id = _text(body.get("conversation_id"), 200)
        call = await self._call(conversation_id, body) if conversation_id else None
        if conversation_id is None or call is None:
            return _answer(False, NO_CALL_MESSAGE, "unknown_call")
        said = _text(body.get("reason"), 300)
        command = AddDoNotCall(
            message_id=uuid.uuid5(_NAMESPACE, f"opt_out\x00{conversation_id}").hex,
            correlation_id=current_correlation_id(),
            phone_number=call["to_number"],
            reason=f"Opted out by voice in conversation {conversation_id}" + (f": {said}" if said else ""),
            source="voice",
            conversation_id=conversation_id,
            campaign_id=call.get("campaign_id"),
            recipient_id=call.get("recipient_id"),
        )
        async with self._uow() as uow:
            await uow.publish(command, key=command.phone_number, topic=topics.CAMPAIGN_COMMANDS)
        log.info("tool_webhooks.opt_out.recorded", conversation_id=conversation_id)
        return _answer(True, OPTED_OUT_MESSAGE)

    async def callback(self, body: Mapping[str, Any]) -> ToolAnswer:
        """`{conversation_id, requested_time, called_number?}` → `campaign.schedule_callback`; the
        answer says what was booked (or why not, for the agent to ask again)."""
        conversation_id = _text(body.get("conversation_id"), 200)
        call = await self._call(conversation_id, body) if conversation_id else None
        if conversation_id is None or call is None:
            return _answer(False, NO_CALL_MESSAGE, "unknown_call")
        requested = _text(body.get("requested_time"), callback_time.MAX_TEXT)
        if requested is None:
            return _answer(
                False, "When should we call back? Please ask for a day and a time.", "missing_time"
            )
        window = CallingWindow.model_validate(call["calling_window"]) if call.get("calling_window") else None
        now = datetime.fromtimestamp(self._clock(), UTC)
        try:
            # dateparser is CPU work (and loads its data once): off the loop answering other tools.
            booking = await asyncio.to_thread(
                callback_time.book,
                requested,
                zones=list(call.get("time_zones") or recipient_time_zones(call["to_number"], None)),
                window=window,
                now=now,
                max_ahead=timedelta(days=self._settings.callback_max_days),
                quiet_hours=self._quiet_hours.for_number(call["to_number"]),
            )
        except callback_time.Unbookable as refused:
            return _answer(False, refused.message, refused.code)
        at_unix = int(booking.dial_at.timestamp())
        command = ScheduleCallback(
            message_id=uuid.uuid5(_NAMESPACE, f"callback\x00{conversation_id}\x00{at_unix}").hex,
            correlation_id=current_correlation_id(),
            conversation_id=conversation_id,
            to_number=call["to_number"],
            callback_at_unix=int(booking.asked.timestamp()),
            requested=requested,
            time_zone=booking.zone,
            campaign_id=call.get("campaign_id"),
            recipient_id=call.get("recipient_id"),
            agent_id=call.get("agent_id"),
            phone_number_id=call.get("phone_number_id"),
            provider=call.get("provider"),
            dynamic_variables=call.get("dynamic_variables") or {},
            customer_name=call.get("customer_name"),
            customer_email=call.get("customer_email"),
        )
        async with self._uow() as uow:
            await uow.publish(
                command, key=command.campaign_id or conversation_id, topic=topics.CAMPAIGN_COMMANDS
            )
        log.info("tool_webhooks.callback.requested", conversation_id=conversation_id, at_unix=at_unix)
        return _answer(
            True,
            callback_time.booked_message(booking),
            booked_for=booking.dial_at.astimezone(UTC).isoformat(),
            time_zone=booking.zone,
        )
