"""Use cases of a campaign's submission: `campaign.submit` (chunk 0 and the settings) and
`campaign.add_recipients` (the other chunks, in any order, before or after the submit). Never
commits; each runs in one unit of work.

Chunks are stored as they come (a duplicate chunk is ignored); once all are in, the campaign is
staged: positions and recipient ids are assigned, numbers already in the campaign are
`skipped_duplicate`, and `campaign.recipients_staged` lists every recipient with its status then.
A campaign that is due starts running at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from campaigns import announce, domain
from campaigns.context import Deps, rebind_credentials
from campaigns.domain import CampaignStatus
from campaigns.models import Campaign
from campaigns.uow import UnitOfWork
from contracts.base import Message
from contracts.campaigns import (
    AddCampaignRecipients,
    CampaignRecipient,
    RetryDelays,
    SubmitCampaign,
    time_zone_problem,
)

log = structlog.get_logger("campaigns.submission")


def _rows(
    campaign_id: str,
    chunk_index: int,
    recipients: list[CampaignRecipient],
    fallback_zone: str | None,
    campaign_status: str | None,
) -> list[dict[str, Any]]:
    rows = []
    for offset, recipient in enumerate(recipients):
        number, problem = domain.normalize_number(recipient.phone_number.strip())
        status, reason = domain.status_on_arrival(None if number else problem, campaign_status)
        rows.append(
            {
                "campaign_id": campaign_id,
                "chunk_index": chunk_index,
                "chunk_offset": offset,
                "given_recipient_id": recipient.recipient_id or None,
                "phone_number": (number or recipient.phone_number)[:64],
                "name": recipient.name,
                "email": recipient.email,
                "dynamic_variables": recipient.dynamic_variables,
                "time_zones": list(domain.recipient_time_zones(number, fallback_zone)) if number else [],
                "status": status,
                "reason": reason,
            }
        )
    return rows


async def _store_chunk(
    deps: Deps,
    uow: UnitOfWork,
    campaign_id: str,
    chunk_index: int,
    recipients: list[CampaignRecipient],
    campaign: Campaign | None,
) -> bool:
    """Insert one chunk's recipients in batches; False for a duplicate chunk."""
    if not await uow.chunks.add(campaign_id, chunk_index):
        log.info("campaigns.chunk.duplicate", campaign_id=campaign_id, chunk_index=chunk_index)
        return False
    status = campaign.status if campaign else None
    zone = campaign.timezone if campaign else None
    size = deps.settings.insert_batch_size
    for start in range(0, len(recipients), size):
        rows = _rows(campaign_id, chunk_index, recipients[start : start + size], zone, status)
        for row in rows:
            row["chunk_offset"] += start
        await uow.recipients.add_many(rows)
    return True


async def _apply_campaign_zone(deps: Deps, uow: UnitOfWork, campaign: Campaign) -> None:
    """Chunks that came before the submit were stored without the campaign's zone."""
    early = await uow.recipients.waiting_before_submit(campaign.campaign_id)
    size = deps.settings.insert_batch_size
    for start in range(0, len(early), size):
        await uow.recipients.set_time_zones(
            [
                {"id": pk, "time_zones": list(domain.recipient_time_zones(number, campaign.timezone))}
                for pk, number in early[start : start + size]
            ]
        )


async def _finalize_if_complete(uow: UnitOfWork, campaign: Campaign, now: datetime, cause: Message) -> None:
    if campaign.ready:
        return
    received = await uow.chunks.count_below(campaign.campaign_id, campaign.recipient_chunks)
    if received < campaign.recipient_chunks:
        return
    total, final = await uow.recipients.finalize(campaign.campaign_id, campaign.recipient_chunks)
    campaign.ready = True
    campaign.total_scheduled = total
    campaign.total_finished = final
    await announce.staged(uow, campaign, cause)
    for rejected in await uow.recipients.final_at_submit(campaign.campaign_id):
        await announce.recipient_updated(uow, campaign, rejected, cause)
    log.info("campaigns.campaign.ready", campaign_id=campaign.campaign_id, recipients=total)


async def submit(deps: Deps, command: SubmitCampaign) -> None:
    """Create the campaign with chunk 0 (a duplicate submit answers with the campaign as it is);
    staged and running at once when all chunks are in and it is due. 422 for a bad time zone."""
    now = deps.clock()
    cid = command.campaign_id
    async with deps.uow() as uow:
        if not await uow.claim(command.message_id):
            return
        zone_problem = time_zone_problem(command.timezone) if command.timezone else None
        if zone_problem:
            await announce.command_failed(uow, command, cid, 422, zone_problem)
            return
        await uow.chunks.lock(cid)
        delays = command.retry_delays or RetryDelays()
        created = await uow.campaigns.add(
            campaign_id=cid,
            name=command.call_name,
            agent_id=command.agent_id,
            phone_number_id=command.phone_number_id,
            phone_provider=command.phone_provider,
            status=CampaignStatus.PENDING,
            created_at_unix=int(now.timestamp()),
            scheduled_time_unix=command.scheduled_time_unix,
            timezone=command.timezone,
            retry_count=command.retry_count,
            retry_delays=delays.model_dump(),
            concurrency_limit=command.concurrency_limit,
            calling_window=command.calling_window.model_dump() if command.calling_window else None,
            max_daily_attempts_per_number=command.max_daily_attempts_per_number,
            phone_number_ids=command.phone_number_ids or None,
            phone_number_daily_caps=command.phone_number_daily_caps or None,
            max_total_minutes=command.max_total_minutes,
            ecommerce_platform=command.ecommerce_platform,
            ecommerce_credentials_encrypted=rebind_credentials(
                deps.settings, command.ecommerce_credentials_encrypted, cid, to_row=True
            ),
            sender_email=command.sender_email,
            analysis_rules=[rule.model_dump() for rule in command.analysis_rules] or None,
            recipient_chunks=command.recipient_chunks,
            ready=False,
            total_scheduled=0,
            total_dispatched=0,
            total_finished=0,
            in_flight=0,
            recent_outcomes="",
            dials_accepted=0,
            fatal_dial_failures=0,
            progress_dirty=False,
            correlation_id=command.correlation_id,
        )
        campaign = await uow.campaigns.get_for_update(cid)
        assert campaign is not None
        if not created:
            # A duplicate submit is a no-op; answer with the campaign as it is.
            log.info("campaigns.submit.duplicate", campaign_id=cid)
            await announce.campaign_updated(uow, campaign, now, command)
            return
        await uow.caller_ids.add_pool(cid, domain.caller_id_pool(campaign))
        await _store_chunk(deps, uow, cid, 0, command.recipients, campaign)
        if campaign.timezone:
            await _apply_campaign_zone(deps, uow, campaign)
        await _finalize_if_complete(uow, campaign, now, command)
        await announce.campaign_updated(uow, campaign, now, command)
        if campaign.ready and domain.is_due(campaign, now):
            await announce.changes(uow, campaign, domain.start_campaign(campaign), now, command)
        await announce.complete_if_done(uow, campaign, now)
    log.info("campaigns.submitted", campaign_id=cid, chunks=command.recipient_chunks)
    deps.wake.set()


async def add_recipients(deps: Deps, command: AddCampaignRecipients) -> None:
    """Store one more chunk (before or after the submit); the last one stages the campaign. 422 for
    a chunk index beyond `recipient_chunks`; a chunk after staging is ignored."""
    now = deps.clock()
    cid = command.campaign_id
    async with deps.uow() as uow:
        if not await uow.claim(command.message_id):
            return
        await uow.chunks.lock(cid)
        campaign = await uow.campaigns.get_for_update(cid)
        if campaign is not None and campaign.ready:
            log.info("campaigns.chunk.late", campaign_id=cid, chunk_index=command.chunk_index)
            await announce.campaign_updated(uow, campaign, now, command)
            return
        if campaign is not None and command.chunk_index >= campaign.recipient_chunks:
            await announce.command_failed(uow, command, cid, 422, "chunk_index beyond recipient_chunks")
            return
        # The chunk may arrive before the submit: it is stored and counted when the submit comes.
        await _store_chunk(deps, uow, cid, command.chunk_index, command.recipients, campaign)
        if campaign is None:
            return
        await _finalize_if_complete(uow, campaign, now, command)
        if campaign.ready and campaign.status == CampaignStatus.PENDING and domain.is_due(campaign, now):
            domain.start_campaign(campaign)  # announced just below, with the chunk's answer
        await announce.campaign_updated(uow, campaign, now, command)
        await announce.complete_if_done(uow, campaign, now)
    deps.wake.set()
