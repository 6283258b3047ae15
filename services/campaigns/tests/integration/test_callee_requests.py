"""What callees ask for during a call, through the campaigns commands the agent's tools send:
opt-out by voice, callbacks (campaign recipients and single calls), and analysis-driven retries.
Real broker, database, telephony and simulator; waits poll with a deadline."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from contracts.campaigns import (
    AddDoNotCall,
    AnalysisRule,
    CampaignRecipient,
    CancelCampaign,
    PauseCampaign,
    ScheduleCallback,
    SubmitCampaign,
)
from contracts.telephony import PlaceCall

from .conftest import Harness, new_number

pytestmark = pytest.mark.integration


def _submit(harness: Harness, numbers: list[str], **fields: Any) -> SubmitCampaign:
    return SubmitCampaign(
        campaign_id=f"batch_{uuid.uuid4().hex[:12]}",
        call_name="Callee requests",
        agent_id=harness.agent_id,
        phone_number_id=harness.phone_number_id,
        phone_provider="twilio",
        recipients=[
            CampaignRecipient(phone_number=n, dynamic_variables={"i": i}) for i, n in enumerate(numbers)
        ],
        correlation_id=uuid.uuid4().hex,
        **fields,
    )


async def _in_call(harness: Harness, campaign_id: str, recipient_id: str = "r0") -> dict[str, Any]:
    return await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == campaign_id
            and e["recipient_id"] == recipient_id
            and e["status"] == "in_progress"
        ),
        what="recipient in a call",
    )


async def test_an_opt_out_during_the_call_ends_the_recipient_and_no_campaign_dials_it_again(
    harness: Harness,
) -> None:
    await harness.configure(call_duration_ms=2500)
    number = new_number("1")
    command = _submit(harness, [number], retry_count=2)
    await harness.publish(command, key=command.campaign_id)
    call = await _in_call(harness, command.campaign_id)

    opt_out = AddDoNotCall(
        message_id=uuid.uuid5(uuid.NAMESPACE_URL, f"opt_out:{call['conversation_id']}").hex,
        phone_number=number,
        reason="Opted out by voice",
        source="voice",
        conversation_id=call["conversation_id"],
        campaign_id=command.campaign_id,
        recipient_id="r0",
    )
    await harness.publish(opt_out, key=number)
    await harness.publish(opt_out, key=number)  # the tool call retried: one effect

    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 1
    final = harness.recipient_events(command.campaign_id)[-1]
    assert (final["status"], final["reason"]) == ("opted_out", "Opted out during the call")
    added = [
        e for e in harness.events if e.get("type") == "do_not_call.added" and e["phone_number"] == number
    ]
    assert len(added) == 1
    assert added[0]["source"] == "voice" and added[0]["conversation_id"] == call["conversation_id"]
    assert added[0]["recipient_id"] == "r0"

    again = _submit(harness, [number])
    await harness.publish(again, key=again.campaign_id)
    await harness.wait_status(again.campaign_id, "completed")
    assert harness.final_states(again.campaign_id) == {"r0": "skipped_dnc"}
    assert (await harness.stats())["dials_by_number"][number] == 1


async def test_an_opt_out_after_the_call_ended_still_marks_the_recipient(harness: Harness) -> None:
    numbers = [new_number("1"), new_number("2")]
    command = _submit(harness, numbers, concurrency_limit=1)
    await harness.publish(command, key=command.campaign_id)
    first = await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == command.campaign_id
            and e["recipient_id"] == "r0"
            and e["status"] == "completed"
        ),
        what="first call done",
    )
    await harness.publish(
        AddDoNotCall(
            phone_number=numbers[0],
            source="voice",
            conversation_id=first["conversation_id"],
            campaign_id=command.campaign_id,
            recipient_id="r0",
        ),
        key=numbers[0],
    )
    await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == command.campaign_id
            and e["recipient_id"] == "r0"
            and e["status"] == "opted_out"
        ),
        what="r0 opted out",
    )
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 2


async def test_a_callback_is_one_extra_attempt_at_the_asked_time_not_a_retry(harness: Harness) -> None:
    await harness.configure(call_duration_ms=1500)
    number = new_number("1")
    command = _submit(harness, [number], retry_count=0)
    await harness.publish(command, key=command.campaign_id)
    call = await _in_call(harness, command.campaign_id)

    asked = int(time.time()) + 2
    callback = ScheduleCallback(
        conversation_id=call["conversation_id"],
        to_number=number,
        callback_at_unix=asked,
        requested="in two seconds",
        campaign_id=command.campaign_id,
        recipient_id="r0",
    )
    await harness.publish(callback, key=command.campaign_id)
    await harness.publish(callback, key=command.campaign_id)  # redelivered: one callback

    booked = await harness.wait_for(
        lambda e: e.get("type") == "callback.scheduled" and e["conversation_id"] == call["conversation_id"],
        what="callback booked",
    )
    assert booked["status"] == "scheduled" and booked["callback_at_unix"] == asked
    done = await harness.wait_status(command.campaign_id, "completed")
    assert done["total_calls_finished"] == 1
    final = harness.recipient_events(command.campaign_id)[-1]
    assert final["status"] == "completed" and final["retry_count"] == 0
    assert final["callback_at_unix"] == asked and final["callback_requested"] == "in two seconds"
    assert final["conversation_id"] != call["conversation_id"]
    assert (await harness.stats())["dials_by_number"][number] == 2


async def test_a_callback_for_a_cancelled_campaign_is_refused(harness: Harness) -> None:
    number = new_number("1")
    command = _submit(harness, [number])
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "completed")
    await harness.publish(
        ScheduleCallback(
            conversation_id=f"conv_{uuid.uuid4().hex}",
            to_number=number,
            callback_at_unix=int(time.time()),
            campaign_id=command.campaign_id,
            recipient_id="r0",
        ),
        key=command.campaign_id,
    )
    refused = await harness.wait_for(
        lambda e: e.get("type") == "callback.scheduled" and e.get("campaign_id") == command.campaign_id,
        what="callback answer",
    )
    assert refused["status"] == "refused" and refused["reason"] == "The campaign is completed"


async def test_a_single_call_callback_places_one_follow_up_with_the_same_agent_number_and_variables(
    harness: Harness,
) -> None:
    number = new_number("1")
    conversation_id = f"conv_{uuid.uuid4().hex}"
    callback = ScheduleCallback(
        conversation_id=conversation_id,
        to_number=number,
        callback_at_unix=int(time.time()) + 1,
        requested="in a second",
        agent_id=harness.agent_id,
        phone_number_id=harness.phone_number_id,
        provider="twilio",
        dynamic_variables={"customer": "Ana"},
    )
    await harness.publish(callback, key=conversation_id)
    await harness.publish(callback.model_copy(update={"message_id": uuid.uuid4().hex}), key=conversation_id)

    deadline = time.monotonic() + 30
    while (await harness.stats())["dials_by_number"].get(number, 0) < 1:
        assert time.monotonic() < deadline, "no follow-up call"
        await harness.sim.get("/_sim/calls")  # poll with a deadline
    calls = (await harness.sim.get("/_sim/calls", params={"to_number": number})).json()["calls"]
    assert len(calls) == 1
    # The booking's event is relayed on its own path: the dial can be seen before it arrives.
    await harness.wait_for(
        lambda e: e.get("type") == "callback.scheduled" and e["conversation_id"] == conversation_id,
        what="callback booked",
    )
    booked = [
        e
        for e in harness.events
        if e.get("type") == "callback.scheduled" and e["conversation_id"] == conversation_id
    ]
    assert booked[0]["status"] == "scheduled"
    # Asked again after it was placed: refused, never a second dial.
    await harness.publish(callback.model_copy(update={"message_id": uuid.uuid4().hex}), key=conversation_id)
    await harness.wait_for(
        lambda e: (
            e.get("type") == "callback.scheduled"
            and e["conversation_id"] == conversation_id
            and e["status"] == "refused"
        ),
        what="late callback refused",
    )
    assert (await harness.stats())["dials_by_number"][number] == 1
    assert PlaceCall  # the follow-up is an ordinary PlaceCall (telephony dials each message id once)


async def test_analysis_rules_retry_or_end_the_recipient(harness: Harness) -> None:
    await harness.configure(answered_outcome="call_back_later")
    rules = [
        AnalysisRule(value="call_back_later", action="retry", delay_s=0),
        AnalysisRule(value="wrong_person", action="finish"),
    ]
    number = new_number("1")
    command = _submit(harness, [number], retry_count=2, analysis_rules=rules)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "completed")
    final = harness.recipient_events(command.campaign_id)[-1]
    assert final["status"] == "completed" and final["retry_count"] == 2
    assert "none left" in final["reason"]
    assert (await harness.stats())["dials_by_number"][number] == 3

    voicemail = new_number("7")  # telephony alone would retry a voicemail
    await harness.configure(data_collection_values={voicemail: {"outcome": "wrong_person"}})
    ended = _submit(harness, [voicemail], retry_count=2, analysis_rules=rules)
    await harness.publish(ended, key=ended.campaign_id)
    await harness.wait_status(ended.campaign_id, "completed")
    final = harness.recipient_events(ended.campaign_id)[-1]
    assert final["status"] == "voicemail" and final["retry_count"] == 0
    assert final["reason"] == "Ended by the analysis: outcome = wrong_person"
    assert (await harness.stats())["dials_by_number"][voicemail] == 1


async def test_pause_holds_a_callback_and_cancel_closes_it_like_any_attempt(harness: Harness) -> None:
    await harness.configure(call_duration_ms=1500)
    number = new_number("1")
    command = _submit(harness, [number], retry_count=0)
    await harness.publish(command, key=command.campaign_id)
    call = await _in_call(harness, command.campaign_id)
    await harness.publish(PauseCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "paused")
    callback = ScheduleCallback(
        conversation_id=call["conversation_id"],
        to_number=number,
        callback_at_unix=int(time.time()),
        campaign_id=command.campaign_id,
        recipient_id="r0",
    )
    await harness.publish(callback, key=command.campaign_id)
    waiting = await harness.wait_for(
        lambda e: (
            e.get("type") == "campaign.recipient_updated"
            and e["campaign_id"] == command.campaign_id
            and e["status"] == "scheduled"
            and e.get("callback_at_unix") == callback.callback_at_unix
        ),
        what="the callback waiting once the call ended",
    )
    assert waiting["retry_count"] == 0
    # Paused: the callback is due, yet not dialled; a campaign event after the cancel proves the
    # scheduler had its chances in between.
    await harness.publish(CancelCampaign(campaign_id=command.campaign_id), key=command.campaign_id)
    done = await harness.wait_status(command.campaign_id, "cancelled")
    assert done["total_calls_finished"] == 1
    assert (await harness.stats())["dials_by_number"][number] == 1
