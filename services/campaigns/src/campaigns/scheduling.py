"""The scheduler: starts campaigns whose time came and dials their due recipients within every
limit, in one unit of work per step; queues the follow-up calls of single calls; times out attempts
that never got an outcome; and sends coalesced progress. Never commits itself.

Never dial twice: a recipient is dialled only from `scheduled`, in the same transaction that moves
it to `dialing` and inserts the attempt row (unique per campaign/recipient/attempt); the PlaceCall
`message_id` is derived from (campaign, recipient, attempt), and telephony dials each message id at
most once.

Never skip: every recipient stays `scheduled` until it is dialled or reaches a final state; a
calling window only moves its `next_attempt_at`; an upstream 429 puts it back to wait.

One person, one call: a number already in the campaign is `skipped_duplicate` when all chunks are
in, and a dial first claims (campaign, number) in `campaign_numbers`, so no second recipient of a
number is ever dialled, whatever order or path its rows came by.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

import structlog

from bus.db import database_unavailable
from bus.logs import describe_error
from campaigns import announce, callee_requests, domain, metrics, outcomes, rules
from campaigns.context import Deps, rebind_credentials
from campaigns.domain import AttemptStatus, CampaignStatus, RecipientStatus
from campaigns.models import Campaign, Recipient
from campaigns.uow import UnitOfWork
from contracts.campaigns import CallingWindow
from contracts.telephony import CustomerInfo, PlaceCall

log = structlog.get_logger("campaigns.scheduling")


class Scheduler:
    """One per process (its rotation and time-out scan are its own); tests run a second one, with
    their own settings and clock, on the same database."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._last_timeout_scan = 0.0
        self._rotation = 0

    async def run_forever(self) -> None:
        """Tick every CAMPAIGNS_TICK_S, or earlier when an event freed capacity or added work."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if database_unavailable(exc):  # a lost connection: the next tick uses a new one
                    log.warning("campaigns.scheduler.tick_failed", error=describe_error(exc))
                else:
                    log.exception("campaigns.scheduler.tick_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.deps.wake.wait(), timeout=self.deps.settings.tick_s)
            self.deps.wake.clear()

    async def tick(self, now: datetime | None = None) -> int:
        """One scheduler pass; returns the number of PlaceCall commands dispatched.

        One read transaction says what the pass has to do (`domain.plan_tick`); then a transaction
        for each campaign to start, each running campaign with a free slot, the follow-ups if any
        is due, and each campaign owing a progress snapshot. A pass with nothing to do is that
        one read: the scheduler runs every CAMPAIGNS_TICK_S and after every batch of call events."""
        now = now or self.deps.clock()
        progress_before = now - timedelta(seconds=self.deps.settings.progress_interval_s)
        async with self.deps.uow() as uow:
            candidates = await uow.campaigns.tick_candidates(now, progress_before)
        plan = domain.plan_tick(
            candidates.campaigns,
            int(now.timestamp()),
            progress_before,
            self.deps.settings.default_concurrency,
        )
        to_dispatch = plan.to_dispatch
        running = len(plan.running)
        if plan.to_start and await self._start_due(plan.to_start, now):
            async with self.deps.uow() as uow:  # started now: dispatched in this pass too
                to_dispatch = list(await uow.campaigns.running_ids())
            running = len(to_dispatch)
        metrics.CAMPAIGNS_RUNNING.set(running)
        # Rotate the starting campaign each tick so freed global capacity is shared round-robin.
        self._rotation += 1
        if to_dispatch:
            shift = self._rotation % len(to_dispatch)
            to_dispatch = to_dispatch[shift:] + to_dispatch[:shift]
        placed = 0
        for campaign_id in to_dispatch:
            placed += await self._dispatch(campaign_id, now, progress_before)
        if candidates.follow_ups_due:
            placed += await callee_requests.dial_follow_ups(self.deps, now)
        if now.timestamp() - self._last_timeout_scan >= min(5.0, self.deps.settings.attempt_timeout_s):
            self._last_timeout_scan = now.timestamp()
            await outcomes.time_out_attempts(self.deps, now)
        await self._emit_progress(plan.progress_due, now, progress_before)
        return placed

    async def _start_due(self, due: list[str], now: datetime) -> bool:
        """Start the campaigns whose time came; whether any did."""
        started = False
        for campaign_id in due:
            async with self.deps.uow() as uow:
                campaign = await uow.campaigns.get_for_update(campaign_id)
                if campaign is None or campaign.status != CampaignStatus.PENDING or not campaign.ready:
                    continue
                changes = domain.start_campaign(campaign)
                log.info("campaigns.campaign.started", campaign_id=campaign_id)
                await announce.changes(uow, campaign, changes, now)
                await announce.complete_if_done(uow, campaign, now)
                started = True
        return started

    async def _dispatch(self, campaign_id: str, now: datetime, progress_before: datetime) -> int:
        """Dial due recipients of one campaign within its and the global concurrency budget; the
        campaign's progress snapshot goes out in the same transaction when one is owed."""
        placed = 0
        for _ in range(10):  # a few rounds when recipients were skipped or deferred by a window
            async with self.deps.uow() as uow:
                await uow.dispatch.lock_dispatch()
                found = await uow.campaigns.get_for_dispatch(campaign_id)
                if found is None or found[0].status != CampaignStatus.RUNNING:
                    return placed
                campaign, global_throttle, total_in_flight = found
                limit = campaign.concurrency_limit or self.deps.settings.default_concurrency
                global_limit = domain.effective_limit(self.deps.settings.global_concurrency, global_throttle)
                budget = min(
                    domain.effective_limit(limit, campaign.throttle) - campaign.in_flight,
                    global_limit - total_in_flight,
                    self.deps.settings.dispatch_batch_size,
                )
                if budget <= 0:
                    return placed
                found_due = await uow.recipients.due(campaign_id, now, budget, now - rules.CAP_PERIOD)
                if not found_due:
                    return placed
                due = [d.recipient for d in found_due]
                listed = {d.recipient.phone_number for d in found_due if d.listed}
                dials = {d.recipient.phone_number: list(d.dials) for d in found_due}
                window = (
                    CallingWindow.model_validate(campaign.calling_window) if campaign.calling_window else None
                )
                pool_ids = domain.caller_id_pool(campaign)
                caps = campaign.phone_number_daily_caps or {}
                known = await uow.phone_numbers.known(pool_ids)
                used = (
                    {c.phone_number_id: c.dials for c in await uow.caller_ids.stats(campaign_id)}
                    if len(pool_ids) > 1
                    else {}
                )
                caller_dials = await uow.attempts.latest_caller_dials(
                    {pid: caps[pid] for pid in pool_ids if pid in caps}, now - rules.CAP_PERIOD
                )
                dialled_now = 0
                for recipient in due:
                    if recipient.phone_number in listed:
                        changes = domain.finish_recipient(
                            campaign,
                            recipient,
                            RecipientStatus.SKIPPED_DNC,
                            "Number is on the do-not-call list",
                        )
                        await announce.changes(uow, campaign, changes, now)
                        continue
                    hold = self._hold(campaign, recipient, window, dials, now)
                    if hold is not None:
                        if hold.at is None:
                            status, reason = RecipientStatus.FAILED, hold.reason
                            changes = domain.finish_recipient(campaign, recipient, status, reason)
                        else:
                            # Reported (with its zones and reason), so a recipient held back is
                            # visibly waiting; once per hold, as it is not due again before.
                            metrics.HELD.labels(hold.waiting_reason).inc()
                            changes = domain.hold_recipient(recipient, hold.at, hold.waiting_reason)
                        await announce.changes(uow, campaign, changes, now)
                        continue
                    caller = self._caller_id(campaign, pool_ids, known, caller_dials, used, recipient, now)
                    if isinstance(caller, datetime):
                        metrics.HELD.labels(rules.CALLER_ID_CAP).inc()
                        changes = domain.hold_recipient(recipient, caller, rules.CALLER_ID_CAP)
                        await announce.changes(uow, campaign, changes, now)
                        continue
                    over = rules.budget_problem(
                        campaign.max_total_minutes,
                        campaign.call_seconds,
                        campaign.in_flight,
                        campaign.longest_call_s,
                        self.deps.settings.budget_call_estimate_s,
                    )
                    if over is not None:
                        log.warning("campaigns.campaign.budget_paused", campaign_id=campaign.campaign_id)
                        await announce.changes(uow, campaign, domain.pause_campaign(campaign, over), now)
                        break
                    owner = await uow.numbers.claim(
                        campaign.campaign_id, recipient.phone_number, recipient.id
                    )
                    if owner != recipient.id:
                        log.warning(
                            "campaigns.recipient.duplicate_number",
                            campaign_id=campaign.campaign_id,
                            recipient_id=recipient.recipient_id,
                        )
                        changes = domain.finish_recipient(
                            campaign,
                            recipient,
                            RecipientStatus.SKIPPED_DUPLICATE,
                            "Same phone number as another recipient of the campaign: dialled once",
                        )
                        await announce.changes(uow, campaign, changes, now)
                        continue
                    provider = known.get(caller.phone_number_id, ("", None))[0] or campaign.phone_provider
                    if caller.phone_number_id == campaign.phone_number_id and campaign.phone_provider:
                        provider = campaign.phone_provider
                    await self._dial(
                        uow, campaign, recipient, caller.phone_number_id, provider or "twilio", now
                    )
                    caller_dials.setdefault(caller.phone_number_id, []).append(now)
                    used[caller.phone_number_id] = used.get(caller.phone_number_id, 0) + 1
                    dials.setdefault(recipient.phone_number, []).append((campaign.campaign_id, now))
                    dialled_now += 1
                await announce.complete_if_done(uow, campaign, now)
                if domain.progress_due(campaign, progress_before):
                    await announce.campaign_updated(uow, campaign, now)
            placed += dialled_now
            metrics.ATTEMPTS_DISPATCHED.inc(dialled_now)
            if dialled_now == len(due):
                return placed
        return placed

    @staticmethod
    def _caller_id(
        campaign: Campaign,
        pool_ids: list[str],
        known: dict[str, tuple[str, str | None]],
        caller_dials: dict[str, list[datetime]],
        used: dict[str, int],
        recipient: Recipient,
        now: datetime,
    ) -> rules.CallerId | datetime:
        """The pool number to dial `recipient` from, or when one is next under its daily cap
        (`caller_dials`: each capped number's latest dials; `used`: the campaign's dials per number)."""
        caps = campaign.phone_number_daily_caps or {}
        pool = [
            rules.CallerId(
                pid, known.get(pid, ("", None))[1], caps.get(pid), caller_dials.get(pid, []), used.get(pid, 0)
            )
            for pid in pool_ids
        ]
        return rules.choose_caller_id(pool, recipient.phone_number, now)

    def _hold(
        self,
        campaign: Campaign,
        recipient: Recipient,
        window: CallingWindow | None,
        dials: dict[str, list[tuple[str, datetime]]],
        now: datetime,
    ) -> rules.Hold | None:
        """What holds a due recipient back now (quiet hours, the campaign's window, the caps), if
        anything; `dials` are (campaign_id, dialed_at) per number over the last 24 h."""
        mine = dials.get(recipient.phone_number, [])
        return rules.hold_for(
            now,
            recipient.phone_number,
            recipient.time_zones,
            window,
            dials_everywhere=[at for _, at in mine],
            platform_cap=self.deps.settings.max_attempts_per_number_24h,
            dials_in_campaign=[at for cid, at in mine if cid == campaign.campaign_id],
            campaign_cap=campaign.max_daily_attempts_per_number,
            quiet_hours=self.deps.quiet_hours,
        )

    async def _dial(
        self,
        uow: UnitOfWork,
        campaign: Campaign,
        recipient: Recipient,
        phone_number_id: str,
        provider: str,
        now: datetime,
    ) -> None:
        """Attempt n: the attempt row, the recipient `dialing` and the PlaceCall, in one transaction."""
        assert recipient.recipient_id is not None
        number = recipient.attempts + 1
        message_id = domain.attempt_message_id(campaign.campaign_id, recipient.recipient_id, number)
        created = await uow.attempts.add(
            message_id=message_id,
            campaign_id=campaign.campaign_id,
            recipient_id=recipient.recipient_id,
            attempt=number,
            recipient_pk=recipient.id,
            to_number=recipient.phone_number,
            phone_number_id=phone_number_id,
            status=AttemptStatus.DIALING,
            dialed_at=now,
        )
        if not created:  # cannot happen while the recipient row is locked; never dial twice anyway
            log.error("campaigns.dial.attempt_exists", message_id=message_id)
            return
        changes = domain.start_attempt(campaign, recipient, number)
        await uow.caller_ids.count(campaign.campaign_id, phone_number_id, dials=1)
        info = None
        if recipient.name or recipient.email:
            info = CustomerInfo(name=recipient.name, email=recipient.email, phone=recipient.phone_number)
        command = PlaceCall(
            message_id=message_id,
            provider=provider,
            agent_id=campaign.agent_id,
            agent_phone_number_id=phone_number_id,
            to_number=recipient.phone_number,
            dynamic_variables=recipient.dynamic_variables or {},
            customer_info=info,
            ecommerce_platform=campaign.ecommerce_platform,
            ecommerce_credentials_encrypted=rebind_credentials(
                self.deps.settings,
                campaign.ecommerce_credentials_encrypted,
                campaign.campaign_id,
                to_row=False,
            ),
            sender_email=campaign.sender_email,
            campaign_id=campaign.campaign_id,
            recipient_id=recipient.recipient_id,
            attempt=number,
            calling_window=CallingWindow.model_validate(campaign.calling_window)
            if campaign.calling_window
            else None,
            time_zones=list(recipient.time_zones or []),
            correlation_id=campaign.correlation_id,
        )
        await uow.send_command(command, key=message_id)
        await announce.changes(uow, campaign, changes, now)

    async def _emit_progress(self, due: list[str], now: datetime, progress_before: datetime) -> None:
        """Coalesced progress: at most one snapshot per campaign per CAMPAIGNS_PROGRESS_INTERVAL_S."""
        for campaign_id in due:
            async with self.deps.uow() as uow:
                campaign = await uow.campaigns.get_for_update(campaign_id)
                if campaign is None or not domain.progress_due(campaign, progress_before):
                    continue  # sent meanwhile (by this pass's dispatch, or another replica)
                await announce.campaign_updated(uow, campaign, now)
