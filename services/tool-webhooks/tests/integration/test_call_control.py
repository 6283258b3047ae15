"""The call-control tools (opt-out, callback): token-checked routes that turn what the callee
asked for into campaigns commands, each at most once however often ElevenLabs retries them."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import pytest

from contracts import topics
from contracts.campaigns import CallingWindow
from contracts.telephony import CallPlaced, CustomerInfo
from devinfra.bus_harness import wait_for
from tool_webhooks import callback_time, domain
from tool_webhooks.models import Conversation

from .conftest import Harness

pytestmark = pytest.mark.integration

NUMBER = "+14155550100"


async def campaign_call(harness: Harness, *, window: CallingWindow | None = None) -> str:
    """A campaign's call as telephony announces it, projected."""
    conversation_id = f"conv_{uuid.uuid4().hex[:12]}"
    event = CallPlaced(
        conversation_id=conversation_id,
        provider="twilio",
        agent_id="agent_1",
        phone_number_id="phnum_1",
        to_number=NUMBER,
        customer_info=CustomerInfo(name="Ana", email="ana@example.org"),
        campaign_id="batch_1",
        recipient_id="r7",
        attempt=1,
        placed_at_unix=int(time.time()),
        dynamic_variables={"customer": "Ana"},
        calling_window=window,
        time_zones=["America/Los_Angeles"],
    )
    await harness.publish(event, topics.TELEPHONY_EVENTS, key=conversation_id)
    await harness.wait_row(Conversation.__table__, conversation_id=conversation_id)  # type: ignore[arg-type]
    return conversation_id


async def test_opt_out_sends_one_do_not_call_command_with_the_conversation(harness: Harness) -> None:
    conversation_id = await campaign_call(harness)
    body = {"conversation_id": conversation_id, "reason": "stop calling me"}
    first = await harness.tool(domain.OPT_OUT_ROUTE, body)
    again = await harness.tool(domain.OPT_OUT_ROUTE, body)  # ElevenLabs retried the tool call
    assert first.status_code == 200
    assert (
        first.json()
        == again.json()
        == {"success": True, "message": "Done: this number will not be called again."}
    )
    command = await wait_for(
        harness.campaign_commands, what="do_not_call.add", conversation_id=conversation_id
    )
    assert command["type"] == "do_not_call.add" and command["source"] == "voice"
    assert (command["phone_number"], command["campaign_id"], command["recipient_id"]) == (
        NUMBER,
        "batch_1",
        "r7",
    )
    assert command["reason"] == f"Opted out by voice in conversation {conversation_id}: stop calling me"
    sent = [c for c in harness.campaign_commands if c.get("conversation_id") == conversation_id]
    assert {c["message_id"] for c in sent} == {command["message_id"]}  # the campaigns inbox applies it once


async def test_opt_out_before_the_call_is_projected_uses_the_called_number(harness: Harness) -> None:
    conversation_id = f"conv_{uuid.uuid4().hex[:12]}"
    response = await harness.tool(
        domain.OPT_OUT_ROUTE, {"conversation_id": conversation_id, "called_number": "+14155550199"}
    )
    assert response.json()["success"] is True
    command = await wait_for(harness.campaign_commands, what="opt-out", conversation_id=conversation_id)
    assert command["phone_number"] == "+14155550199" and command["campaign_id"] is None
    unknown = await harness.tool(domain.OPT_OUT_ROUTE, {"conversation_id": f"conv_{uuid.uuid4().hex}"})
    assert unknown.json()["error"] == "unknown_call"
    not_a_number = {"conversation_id": f"conv_{uuid.uuid4().hex}", "called_number": "call me maybe"}
    assert (await harness.tool(domain.OPT_OUT_ROUTE, not_a_number)).json()["error"] == "unknown_call"


async def test_callback_books_the_asked_time_in_the_window_and_says_what_was_booked(harness: Harness) -> None:
    window = CallingWindow(start="09:00", end="17:00")
    conversation_id = await campaign_call(harness, window=window)
    la = ZoneInfo("America/Los_Angeles")
    tomorrow = datetime.now(la).date() + timedelta(days=1)
    asked = datetime.combine(tomorrow, dt_time(20, 0), la)
    body = {"conversation_id": conversation_id, "requested_time": asked.replace(tzinfo=None).isoformat()}
    # 20:00 is after hours: the next opening, 09:00 the day after, in the callee's zone.
    response = await harness.tool(domain.CALLBACK_ROUTE, body)
    answer = response.json()
    booked = datetime.combine(tomorrow + timedelta(days=1), dt_time(9, 0), la)
    assert response.status_code == 200 and answer["success"] is True
    assert answer["booked_for"] == booked.astimezone(UTC).isoformat()
    assert "outside our calling hours" in answer["message"]
    assert callback_time.spoken(booked, "America/Los_Angeles") in answer["message"]
    await harness.tool(domain.CALLBACK_ROUTE, body)  # retried: the same command id
    command = await wait_for(
        harness.campaign_commands,
        what="schedule_callback",
        conversation_id=conversation_id,
        type="campaign.schedule_callback",
    )
    assert command["callback_at_unix"] == int(asked.timestamp())
    assert (command["campaign_id"], command["recipient_id"], command["to_number"]) == (
        "batch_1",
        "r7",
        NUMBER,
    )
    assert command["dynamic_variables"] == {"customer": "Ana"} and command["customer_name"] == "Ana"
    assert command["requested"] == body["requested_time"] and command["time_zone"] == "America/Los_Angeles"
    sent = [c for c in harness.campaign_commands if c.get("conversation_id") == conversation_id]
    assert {c["message_id"] for c in sent} == {command["message_id"]}


async def test_callback_refusals_are_spoken_and_send_nothing(harness: Harness) -> None:
    conversation_id = await campaign_call(harness)
    missing = await harness.tool(domain.CALLBACK_ROUTE, {"conversation_id": conversation_id})
    unreadable = await harness.tool(
        domain.CALLBACK_ROUTE, {"conversation_id": conversation_id, "requested_time": "whenever, really"}
    )
    assert missing.json()["error"] == "missing_time" and unreadable.json()["error"] == "unreadable_time"
    assert unreadable.json()["success"] is False and unreadable.json()["message"]
    assert [c for c in harness.campaign_commands if c.get("conversation_id") == conversation_id] == []


async def test_the_call_control_routes_need_their_own_tools_token(harness: Harness) -> None:
    conversation_id = await campaign_call(harness)
    body = {"conversation_id": conversation_id}
    assert (await harness.tool(domain.OPT_OUT_ROUTE, body, token=None)).status_code == 401
    other = (await harness.create_tool(domain.CALLBACK_ROUTE))[2]
    assert (await harness.tool(domain.OPT_OUT_ROUTE, body, token=other)).status_code == 401
    assert [c for c in harness.campaign_commands if c.get("conversation_id") == conversation_id] == []
