"""What the use cases publish: the campaign's snapshot, each recipient change, the bulk staged and
closed recipients, a refused command. Queued on the unit of work's outbox (sent after commit), so
a state change and its events are written together or not at all.

Recipient events: every state of every recipient is announced, so a consumer of the topic builds
it from the events alone. `campaign.recipients_staged` lists every recipient once its last chunk is
in (with its status then: `scheduled`, or final when rejected on arrival or closed before that);
`campaign.recipients_closed` lists the waiting recipients a cancel (or a campaign that could not
run) closes in bulk, in the transaction that closes them; `campaign.recipient_updated` announces
each other change one by one (`domain.RecipientChanged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog

from campaigns import domain
from campaigns.domain import RecipientStatus
from campaigns.models import Campaign, CampaignCallerId, Recipient
from campaigns.uow import UnitOfWork
from contracts.base import Command, CommandFailed, Message
from contracts.campaigns import (
    RECIPIENTS_PER_EVENT,
    CallerIdStats,
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignSnapshot,
    CampaignUpdated,
    ClosedRecipient,
    StagedRecipient,
)

log = structlog.get_logger("campaigns.announce")


def snapshot(
    campaign: Campaign, now: datetime, caller_ids: Sequence[CampaignCallerId] = ()
) -> CampaignSnapshot:
    caps = campaign.phone_number_daily_caps or {}
    return CampaignSnapshot(
        phone_numbers=[
            CallerIdStats(
                phone_number_id=c.phone_number_id,
                dials=c.dials,
                answered=c.answered,
                answer_rate=round(c.answered / c.dials, 4) if c.dials else None,
                daily_cap=caps.get(c.phone_number_id),
            )
            for c in caller_ids
        ],
        campaign_id=campaign.campaign_id,
        name=campaign.name,
        agent_id=campaign.agent_id,
        phone_number_id=campaign.phone_number_id,
        phone_provider=campaign.phone_provider,
        status=campaign.status,
        created_at_unix=campaign.created_at_unix,
        scheduled_time_unix=campaign.scheduled_time_unix,
        timezone=campaign.timezone,
        retry_count=campaign.retry_count,
        total_calls_scheduled=campaign.total_scheduled,
        total_calls_dispatched=campaign.total_dispatched,
        total_calls_finished=campaign.total_finished,
        last_updated_at_unix=int(now.timestamp()),
        status_reason=campaign.status_reason,
        max_total_minutes=campaign.max_total_minutes,
        call_minutes_used=round(campaign.call_seconds / 60, 2),
    )


async def campaign_updated(
    uow: UnitOfWork, campaign: Campaign, now: datetime, cause: Message | None = None
) -> None:
    """`campaign.updated` with the campaign as it is now (progress is no longer due)."""
    campaign.progress_dirty = False
    campaign.last_emitted_at = now
    event = CampaignUpdated(
        campaign=snapshot(campaign, now, await uow.caller_ids.stats(campaign.campaign_id)),
        correlation_id=cause.correlation_id if cause else campaign.correlation_id,
        causation_id=cause.message_id if cause else None,
    )
    await uow.publish(event, key=campaign.campaign_id)


async def recipient_updated(
    uow: UnitOfWork, campaign: Campaign, recipient: Recipient, cause: Message | None = None
) -> None:
    next_at = recipient.next_attempt_at if recipient.status == RecipientStatus.SCHEDULED else None
    event = CampaignRecipientUpdated(
        campaign_id=campaign.campaign_id,
        recipient_id=recipient.recipient_id or "",
        position=recipient.position if recipient.position is not None else -1,
        to_number=recipient.phone_number,
        status=recipient.status,
        conversation_id=recipient.conversation_id,
        duration_seconds=recipient.duration_seconds,
        outcome=recipient.outcome,
        retry_count=recipient.retries,
        next_attempt_at_unix=int(next_at.timestamp()) if next_at else None,
        time_zones=list(recipient.time_zones or []),
        reason=recipient.reason,
        waiting_reason=recipient.waiting_reason if recipient.status == RecipientStatus.SCHEDULED else None,
        callback_at_unix=int(recipient.callback_at.timestamp()) if recipient.callback_at else None,
        callback_requested=recipient.callback_requested,
        correlation_id=cause.correlation_id if cause else campaign.correlation_id,
        causation_id=cause.message_id if cause else None,
    )
    await uow.publish(event, key=campaign.campaign_id)


async def changes(
    uow: UnitOfWork,
    campaign: Campaign,
    changed: Sequence[domain.Change],
    now: datetime,
    cause: Message | None = None,
) -> None:
    """Publish what the state machine changed (`domain.Change`s), in order."""
    for change in changed:
        if isinstance(change, domain.RecipientChanged):
            await recipient_updated(uow, campaign, change.recipient, cause)
        else:
            await campaign_updated(uow, campaign, now, cause)


async def complete_if_done(uow: UnitOfWork, campaign: Campaign, now: datetime) -> None:
    """Every recipient final → completed, announced (an ended campaign keeps its status)."""
    if not domain.is_done(campaign):
        return
    changed = domain.complete_campaign(campaign, *await uow.recipients.outcomes(campaign.campaign_id))
    log.info("campaigns.campaign.completed", campaign_id=campaign.campaign_id)
    await changes(uow, campaign, changed, now)


async def staged(
    uow: UnitOfWork, campaign: Campaign, cause: Message | None, part_size: int = RECIPIENTS_PER_EVENT
) -> None:
    """`campaign.recipients_staged`: every recipient of a campaign just staged, `part_size` a part."""
    parts = -(-campaign.total_scheduled // part_size)
    index = 0
    async for rows in uow.recipients.staged(campaign.campaign_id, part_size):
        event = CampaignRecipientsStaged(
            campaign_id=campaign.campaign_id,
            part_index=index,
            part_count=parts,
            recipients=[
                StagedRecipient(
                    recipient_id=rid,
                    position=pos,
                    to_number=number,
                    status=status,
                    time_zones=zones,
                    reason=reason,
                )
                for rid, pos, number, status, zones, reason in rows
            ],
            correlation_id=cause.correlation_id if cause else campaign.correlation_id,
            causation_id=cause.message_id if cause else None,
        )
        await uow.publish(event, key=campaign.campaign_id)
        index += 1


async def close_waiting(
    uow: UnitOfWork,
    campaign: Campaign,
    status: str,
    reason: str,
    cause: Message | None,
    part_size: int = RECIPIENTS_PER_EVENT,
) -> int:
    """Every waiting recipient → `status` (final) and, once the campaign is staged,
    `campaign.recipients_closed` naming them (before that, `staged` announces them with
    this status). Returns how many were closed (the caller counts them: `domain.cancel_campaign`,
    `domain.fail_campaign`)."""
    closed = await uow.recipients.close_scheduled(campaign.campaign_id, status, reason)
    if not campaign.ready or not closed:
        return len(closed)
    parts = -(-len(closed) // part_size)
    for index in range(parts):
        chunk = closed[index * part_size : (index + 1) * part_size]
        event = CampaignRecipientsClosed(
            campaign_id=campaign.campaign_id,
            status=status,
            reason=reason,
            part_index=index,
            part_count=parts,
            recipients=[
                ClosedRecipient(
                    recipient_id=r.recipient_id or "",
                    position=-1 if r.position is None else r.position,
                    to_number=r.phone_number,
                    retry_count=r.retries,
                    conversation_id=r.conversation_id,
                    duration_seconds=r.duration_seconds,
                    outcome=r.outcome,
                    time_zones=list(r.time_zones or []),
                )
                for r in chunk
            ],
            correlation_id=cause.correlation_id if cause else campaign.correlation_id,
            causation_id=cause.message_id if cause else None,
        )
        await uow.publish(event, key=campaign.campaign_id)
    return len(closed)


async def command_failed(uow: UnitOfWork, command: Command, key: str, status: int, error: str) -> None:
    """`command.failed` answering a command that cannot be applied (404, 409, 422)."""
    log.info("campaigns.command.failed", command_type=command.type, status_code=status, error=error)
    await uow.publish(
        CommandFailed(
            command_type=command.type,
            status_code=status,
            error=error,
            correlation_id=command.correlation_id,
            causation_id=command.message_id,
        ),
        key=key,
    )
