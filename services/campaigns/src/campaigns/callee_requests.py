"""Use cases of what a callee asks for during a call, through the agent's tools: "do not call me
again" (`do_not_call.add` with its conversation) and "call me back then" (`campaign.schedule_callback`),
and the follow-up calls of single calls (a scheduler step). Never commits; each runs in one unit of
work.

Never dial twice: a campaign callback is one more attempt of its recipient, dialled by the
scheduler like any attempt (attempt row + recipient lock + PlaceCall message id per attempt); a
single call's follow-up is one row per conversation whose PlaceCall `message_id` is derived from
the conversation (`callee.follow_up_message_id`) and which is marked `placed` in the transaction
that queues the PlaceCall. Commands are inbox-deduplicated, so a tool call ElevenLabs retries
changes nothing more.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from campaigns import announce, callee, domain
from campaigns.context import Deps
from campaigns.models import Campaign, Recipient
from campaigns.uow import UnitOfWork
from contracts.calling import recipient_time_zones
from contracts.campaigns import AddDoNotCall, CallbackScheduled, CallingWindow, ScheduleCallback
from contracts.quiet_hours import QUIET_HOURS, never_permitted_reason, next_permitted_time
from contracts.telephony import CustomerInfo, PlaceCall

log = structlog.get_logger("campaigns.callee_requests")

FOLLOW_UP_BATCH = 50


# ---- opt-out ---------------------------------------------------------------------------------


async def opted_out(uow: UnitOfWork, command: AddDoNotCall, now: datetime) -> None:
    """After the number joined the list: the call's recipient ends as `opted_out` (at once, or
    when its call in flight ends) and a follow-up call to the number is dropped."""
    cancelled = await uow.follow_ups.cancel_for_number(command.phone_number.strip())
    if cancelled:
        log.info("campaigns.follow_up.cancelled_by_opt_out", count=cancelled)
    if command.campaign_id is None or command.recipient_id is None:
        return
    found = await _locked_recipient(uow, command.campaign_id, command.recipient_id)
    if found is None:
        log.warning("campaigns.opt_out.unknown_recipient", campaign_id=command.campaign_id)
        return
    campaign, recipient = found
    # A call in flight ends as opted_out with its attempt (`outcomes`).
    changes = domain.opt_out(campaign, recipient, callee.OPTED_OUT_REASON)
    if not changes:
        return
    await announce.changes(uow, campaign, changes, now, command)
    await announce.complete_if_done(uow, campaign, now)


async def _locked_recipient(
    uow: UnitOfWork, campaign_id: str, recipient_id: str
) -> tuple[Campaign, Recipient] | None:
    """The campaign and one of its recipients, locked in that order (as every use case does)."""
    pk = await uow.recipients.find_pk(campaign_id, recipient_id)
    if pk is None:
        return None
    campaign = await uow.campaigns.get_for_update(campaign_id)
    recipient = await uow.recipients.get_for_update(pk)
    if campaign is None or recipient is None:
        return None
    return campaign, recipient


# ---- callbacks -------------------------------------------------------------------------------


async def schedule_callback(deps: Deps, command: ScheduleCallback) -> None:
    now = deps.clock()
    async with deps.uow() as uow:
        if not await uow.claim(command.message_id):
            return
        if await uow.do_not_call.listed([command.to_number]):
            await _callback_answer(uow, command, refused="The number is on the do-not-call list")
        elif command.campaign_id is not None and command.recipient_id is not None:
            await _campaign_callback(deps, uow, command, now)
        else:
            await _follow_up(deps, uow, command, now)
    deps.wake.set()


async def _campaign_callback(deps: Deps, uow: UnitOfWork, command: ScheduleCallback, now: datetime) -> None:
    """One extra attempt of the recipient at the asked time (moved into the calling window);
    not a retry. A recipient whose call already ended is reopened while the campaign runs."""
    assert command.campaign_id is not None and command.recipient_id is not None
    found = await _locked_recipient(uow, command.campaign_id, command.recipient_id)
    if found is None:
        await _callback_answer(uow, command, refused="Unknown campaign recipient")
        return
    campaign, recipient = found
    if campaign.status not in domain.ACTIVE_CAMPAIGN_STATUSES:
        await _callback_answer(uow, command, refused=f"The campaign is {campaign.status}")
        return
    if not domain.may_call_back(recipient):
        await _callback_answer(uow, command, refused=f"The recipient is {recipient.status}")
        return
    asked = datetime.fromtimestamp(command.callback_at_unix, UTC)
    at = callee.callback_time(command.callback_at_unix, now)
    window = CallingWindow.model_validate(campaign.calling_window) if campaign.calling_window else None
    zones = list(recipient.time_zones or [])
    rules = deps.quiet_hours.for_number(recipient.phone_number)
    dial_at, why = next_permitted_time(at, window, rules, zones)
    if dial_at is None:
        never = (
            never_permitted_reason(rules, zones)
            if why == QUIET_HOURS or window is None
            else domain.never_open_reason(window, zones)
        )
        await _callback_answer(uow, command, refused=never)
        return
    changes = domain.book_callback(campaign, recipient, at, asked, command.requested or None)
    log.info(
        "campaigns.callback.scheduled",
        campaign_id=campaign.campaign_id,
        recipient_id=recipient.recipient_id,
    )
    await announce.changes(uow, campaign, changes, now, command)
    await _callback_answer(uow, command, scheduled_for=dial_at)


async def _follow_up(deps: Deps, uow: UnitOfWork, command: ScheduleCallback, now: datetime) -> None:
    """A single call's follow-up: same agent, number and variables, at the asked time (moved
    past the platform's quiet hours in the number's zones)."""
    if command.agent_id is None or command.phone_number_id is None:
        await _callback_answer(uow, command, refused="The call's agent and number are unknown")
        return
    zones = list(recipient_time_zones(command.to_number, command.time_zone))
    rules = deps.quiet_hours.for_number(command.to_number)
    due_at, _ = next_permitted_time(callee.callback_time(command.callback_at_unix, now), None, rules, zones)
    if due_at is None:
        await _callback_answer(uow, command, refused=never_permitted_reason(rules, zones))
        return
    row = await uow.follow_ups.book(
        conversation_id=command.conversation_id,
        to_number=command.to_number,
        agent_id=command.agent_id,
        phone_number_id=command.phone_number_id,
        provider=command.provider or "twilio",
        dynamic_variables=command.dynamic_variables,
        customer_name=command.customer_name,
        customer_email=command.customer_email,
        requested=command.requested or None,
        due_at=due_at,
        status="scheduled",
        message_id=callee.follow_up_message_id(command.conversation_id),
        correlation_id=command.correlation_id,
    )
    if row is None:
        await _callback_answer(uow, command, refused="The follow-up call was already placed")
        return
    log.info("campaigns.follow_up.scheduled", conversation_id=command.conversation_id)
    await _callback_answer(uow, command, scheduled_for=row.due_at)


async def _callback_answer(
    uow: UnitOfWork,
    command: ScheduleCallback,
    *,
    scheduled_for: datetime | None = None,
    refused: str | None = None,
) -> None:
    if refused is not None:
        log.info("campaigns.callback.refused", conversation_id=command.conversation_id, reason=refused)
    await uow.publish(
        CallbackScheduled(
            conversation_id=command.conversation_id,
            to_number=command.to_number,
            status="refused" if refused is not None else "scheduled",
            callback_at_unix=command.callback_at_unix,
            scheduled_for_unix=int(scheduled_for.timestamp()) if scheduled_for is not None else None,
            campaign_id=command.campaign_id,
            recipient_id=command.recipient_id,
            reason=refused,
            correlation_id=command.correlation_id,
            causation_id=command.message_id,
        ),
        key=command.campaign_id or command.conversation_id,
    )


# ---- the follow-up calls of single calls (a scheduler step) ----------------------------------


async def dial_follow_ups(deps: Deps, now: datetime) -> int:
    """Queue the PlaceCall of every follow-up whose time came (a number that joined the
    do-not-call list meanwhile is not called); returns how many were queued."""
    async with deps.uow() as uow:
        due = await uow.follow_ups.due(now, FOLLOW_UP_BATCH)
        listed = await uow.do_not_call.listed([row.to_number for row in due])
        placed = 0
        for row in due:
            if row.to_number in listed:
                row.status = "cancelled"
                continue
            info = None
            if row.customer_name or row.customer_email:
                info = CustomerInfo(name=row.customer_name, email=row.customer_email, phone=row.to_number)
            command = PlaceCall(
                message_id=row.message_id,
                provider="sip_trunk" if row.provider == "sip_trunk" else "twilio",
                agent_id=row.agent_id,
                agent_phone_number_id=row.phone_number_id,
                to_number=row.to_number,
                dynamic_variables=row.dynamic_variables or {},
                customer_info=info,
                correlation_id=row.correlation_id,
            )
            await uow.send_command(command, key=row.message_id)
            row.status = "placed"
            placed += 1
            log.info("campaigns.follow_up.placed", conversation_id=row.conversation_id)
    return placed
