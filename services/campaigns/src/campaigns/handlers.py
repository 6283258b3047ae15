"""Subscribers: decode a campaign command or a telephony event and hand it to its use case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from pydantic import Field

from bus.runtime import Bus
from campaigns.service import CampaignService
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


def register(bus: Bus, service: CampaignService) -> None:
    commands: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
        SubmitCampaign: service.submit,
        AddCampaignRecipients: service.add_recipients,
        CancelCampaign: service.cancel,
        PauseCampaign: service.pause,
        ResumeCampaign: service.resume,
        AddDoNotCall: service.add_do_not_call,
        RemoveDoNotCall: service.remove_do_not_call,
        ScheduleCallback: service.schedule_callback,
    }
    events: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
        CallPlaced: service.call_placed,
        CallDialFailed: service.call_dial_failed,
        CallStatusChanged: service.call_status_changed,
        PhoneNumberImported: service.phone_number_changed,
        PhoneNumberUpdated: service.phone_number_changed,
        PhoneNumberDeleted: service.phone_number_changed,
    }

    async def handle_command(command: Any) -> None:
        """Campaign commands (public topic): submit, chunks, cancel/pause/resume, do-not-call,
        callbacks the callee asked for."""
        await commands[type(command)](command)

    async def handle_telephony(event: Any) -> None:
        """Call outcomes of campaign attempts, and phone-number providers."""
        await events[type(event)](event)

    bus.subscribe(topics.CAMPAIGN_COMMANDS, CampaignCommand, handle_command)
    bus.subscribe(topics.TELEPHONY_EVENTS, TelephonyEventForCampaigns, handle_telephony)
