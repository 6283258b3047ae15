"""Use cases of the operator's commands: cancel, pause and resume a campaign; add and remove a
number on the do-not-call list. Never commits; each runs in one unit of work.

A command that cannot apply is answered with `command.failed` (404 unknown campaign, 409 ended
campaign); a duplicate command (inbox) changes nothing.
"""

from __future__ import annotations

import structlog

from campaigns import announce, callee_requests, domain
from campaigns.context import Deps
from campaigns.domain import CampaignStatus, RecipientStatus
from campaigns.models import Campaign
from campaigns.uow import UnitOfWork
from contracts.campaigns import (
    AddDoNotCall,
    CancelCampaign,
    DoNotCallAdded,
    DoNotCallRemoved,
    PauseCampaign,
    RemoveDoNotCall,
    ResumeCampaign,
)

log = structlog.get_logger("campaigns.control")


async def cancel(deps: Deps, command: CancelCampaign) -> None:
    """Cancel: every waiting recipient is closed `cancelled`; calls in flight end on their own.
    Cancelling a cancelled campaign answers with it; 404 unknown, 409 completed or failed."""
    now = deps.clock()
    async with deps.uow() as uow:
        if not await uow.claim(command.message_id):
            return
        campaign = await uow.campaigns.get_for_update(command.campaign_id)
        if campaign is None:
            await announce.command_failed(uow, command, command.campaign_id, 404, "Campaign not found")
            return
        if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.FAILED):
            await announce.command_failed(
                uow, command, campaign.campaign_id, 409, f"Campaign is {campaign.status}"
            )
            return
        if campaign.status != CampaignStatus.CANCELLED:
            closed = await announce.close_waiting(
                uow, campaign, RecipientStatus.CANCELLED, domain.CANCELLED_REASON, command
            )
            domain.cancel_campaign(campaign, closed)
            log.info("campaigns.campaign.cancelled", campaign_id=campaign.campaign_id, closed=closed)
        await announce.campaign_updated(uow, campaign, now, command)


async def _controllable(
    uow: UnitOfWork, command: CancelCampaign | PauseCampaign | ResumeCampaign
) -> Campaign | None:
    """The campaign a control command may change, locked; None (after answering) otherwise."""
    if not await uow.claim(command.message_id):
        return None
    campaign = await uow.campaigns.get_for_update(command.campaign_id)
    if campaign is None:
        await announce.command_failed(uow, command, command.campaign_id, 404, "Campaign not found")
        return None
    if campaign.status not in domain.ACTIVE_CAMPAIGN_STATUSES:
        await announce.command_failed(
            uow, command, campaign.campaign_id, 409, f"Campaign is {campaign.status}"
        )
        return None
    return campaign


async def pause(deps: Deps, command: PauseCampaign) -> None:
    """Pause on request: nothing more is dialled until resumed (calls in flight go on)."""
    now = deps.clock()
    async with deps.uow() as uow:
        campaign = await _controllable(uow, command)
        if campaign is None:
            return
        await announce.changes(
            uow, campaign, domain.pause_campaign(campaign, domain.PAUSED_ON_REQUEST), now, command
        )


async def resume(deps: Deps, command: ResumeCampaign) -> None:
    """Resume a paused campaign (pending while not due) with a fresh failure window."""
    now = deps.clock()
    async with deps.uow() as uow:
        campaign = await _controllable(uow, command)
        if campaign is None:
            return
        await announce.changes(uow, campaign, domain.resume_campaign(campaign, now), now, command)
        await announce.complete_if_done(uow, campaign, now)
    deps.wake.set()


async def add_do_not_call(deps: Deps, command: AddDoNotCall) -> None:
    """The number joins the list (never dialled again by any campaign), or stays on it with its
    first date (`DoNotCallRepository.add`); an opt-out during a call also ends its recipient
    (`callee_requests.opted_out`)."""
    now = deps.clock()
    number = command.phone_number.strip()
    # A blank reason is none: adding the number again without one keeps the reason it has.
    reason = command.reason if command.reason and command.reason.strip() else None
    async with deps.uow() as uow:
        if not await uow.claim(command.message_id):
            return
        # A listed number keeps its first date (and its reason when none is given): the event
        # tells the entry as the list keeps it, which is what the gateway's read model shows.
        reason, added_at_unix = await uow.do_not_call.add(number, reason, int(now.timestamp()))
        event = DoNotCallAdded(
            phone_number=number,
            reason=reason,
            added_at_unix=added_at_unix,
            source=command.source,
            conversation_id=command.conversation_id,
            campaign_id=command.campaign_id,
            recipient_id=command.recipient_id,
            correlation_id=command.correlation_id,
            causation_id=command.message_id,
        )
        await uow.publish(event, key=number)
        await callee_requests.opted_out(uow, command, now)


async def remove_do_not_call(deps: Deps, command: RemoveDoNotCall) -> None:
    """The number leaves the list."""
    number = command.phone_number.strip()
    async with deps.uow() as uow:
        if not await uow.claim(command.message_id):
            return
        await uow.do_not_call.remove(number)
        event = DoNotCallRemoved(
            phone_number=number, correlation_id=command.correlation_id, causation_id=command.message_id
        )
        await uow.publish(event, key=number)
