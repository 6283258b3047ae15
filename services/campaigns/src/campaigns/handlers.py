"""Subscribers: decode a campaign command or a telephony event and hand it to its use case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field

from bus.runtime import Bus
from campaigns import callee_requests, control, outcomes, submission
from campaigns.context import Deps
from contracts import topics
from contracts.campaigns import (
    AddCampaignRecipients,
    AddDoNotCall,
    CampaignCommand,
    CancelCampaign,
    PauseCampaign,
    RemoveDoNotCall,
    ResumeCampaign,
    ScheduleCallback,
    SubmitCampaign,
)
from contracts.telephony import (
    CallDialFailed,
    CallPlaced,
    CallStatusChanged,
    PhoneNumberDeleted,
    PhoneNumberImported,
    PhoneNumberUpdated,
)

# Only these telephony events matter here; the bus skips the other types of the topic.
TelephonyEventForCampaigns = Annotated[
    CallPlaced
    | CallDialFailed
    | CallStatusChanged
    | PhoneNumberImported
    | PhoneNumberUpdated
    | PhoneNumberDeleted,
    Field(discriminator="type"),
]


# Each message type and the one use case it calls, `use_case(deps, message)`.
COMMANDS: dict[type[Any], Callable[[Deps, Any], Awaitable[None]]] = {
    SubmitCampaign: submission.submit,
    AddCampaignRecipients: submission.add_recipients,
    CancelCampaign: control.cancel,
    PauseCampaign: control.pause,
    ResumeCampaign: control.resume,
    AddDoNotCall: control.add_do_not_call,
    RemoveDoNotCall: control.remove_do_not_call,
    ScheduleCallback: callee_requests.schedule_callback,
}
EVENTS: dict[type[Any], Callable[[Deps, Any], Awaitable[None]]] = {
    CallPlaced: outcomes.call_placed,
    CallDialFailed: outcomes.call_dial_failed,
    CallStatusChanged: outcomes.call_status_changed,
    PhoneNumberImported: outcomes.phone_number_changed,
    PhoneNumberUpdated: outcomes.phone_number_changed,
    PhoneNumberDeleted: outcomes.phone_number_changed,
}


def register(bus: Bus, deps: Deps) -> None:
    async def handle_command(command: Any) -> None:
        """Campaign commands (public topic): submit, chunks, cancel/pause/resume, do-not-call,
        callbacks the callee asked for."""
        await COMMANDS[type(command)](deps, command)

    async def handle_telephony(event: Any) -> None:
        """Call outcomes of campaign attempts, and phone-number providers."""
        await EVENTS[type(event)](deps, event)

    bus.subscribe(topics.CAMPAIGN_COMMANDS, CampaignCommand, handle_command)
    # Call outcomes in batches (one transaction and one offset commit per fetched batch): their use
    # cases only write this database and the outbox, and wake the scheduler after the commit
    # (`outcomes`). Commands stay one at a time: a few per campaign, not per call.
    bus.subscribe(topics.TELEPHONY_EVENTS, TelephonyEventForCampaigns, handle_telephony, batch=True)
