"""Webhooks to the customer's systems: subscriptions, the durable delivery queue and its dispatcher.

At least once, never lost:
1. a bus event that makes a webhook event (`webhooks.webhook_events`) queues one delivery row per
   active subscription that wants it, in one transaction (the event's body is stored once, so
   every attempt sends the same bytes); the ids are stable, so a redelivered bus event queues
   nothing new;
2. the dispatcher claims due rows (FOR UPDATE SKIP LOCKED) under a lease, signs and POSTs them
   through the SSRF guard, and records each answer (status, excerpt, timing) while its lease holds,
   with the next attempt (backoff with jitter, Retry-After) or the final status, and emits
   `webhook_delivery.updated` for the gateway's read model;
3. a worker that dies or stalls mid-send loses its rows when the lease ends and another worker
   sends them again (a duplicate the receiver drops by event id). A stalled worker that wakes up
   checks its lease before each send and records nothing once it lost it: at most the rows it had
   in flight are sent twice, never a storm.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import structlog
from prometheus_client import Counter

from bus.outbound import OutboundClient, OutboundFailed, OutboundRefused, allowlisted, parse_allow_hosts
from bus.secrets import Undecryptable, column_context, message_context
from contracts.base import Command, CommandFailed, Event
from contracts.campaigns import CampaignUpdated
from contracts.notifier import (
    CreateWebhookSubscription,
    DeleteWebhookSubscription,
    EnableWebhookSubscription,
    ResendWebhookDelivery,
    WebhookAttempt,
    WebhookDeliveryUpdated,
    WebhookSubscriptionDeleted,
    WebhookSubscriptionRecord,
    WebhookSubscriptionUpdated,
)
from notifier import webhooks
from notifier.domain import parse_retry_after
from notifier.models import SubscriptionStatus, WebhookDelivery, WebhookDeliveryStatus, WebhookSubscription
from notifier.repository import ClaimedDelivery
from notifier.settings import Settings
from notifier.uow import UnitOfWork

log = structlog.get_logger("notifier.webhooks")

ATTEMPTS = Counter("switchboard_webhook_attempts_total", "Webhook delivery attempts, by result.", ["result"])
DISABLED = Counter(
    "switchboard_webhook_subscriptions_disabled_total", "Subscriptions disabled by their streak."
)

Clock = Callable[[], datetime]


def _unix(at: datetime | None) -> int | None:
    return int(at.timestamp()) if at is not None else None


def subscription_record(sub: WebhookSubscription) -> WebhookSubscriptionRecord:
    return WebhookSubscriptionRecord(
        subscription_id=sub.subscription_id,
        url=sub.url,
        event_types=sub.event_types,
        description=sub.description,
        status=sub.status,
        disabled_reason=sub.disabled_reason,
        consecutive_failures=sub.consecutive_failures,
        failing_since_unix=_unix(sub.failing_since),
        created_at_unix=int(sub.created_at.timestamp()),
    )


def delivery_event(
    row: WebhookDelivery, attempt: WebhookAttempt | None, cause: Command | None = None
) -> WebhookDeliveryUpdated:
    return WebhookDeliveryUpdated(
        delivery_id=row.delivery_id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at_unix=_unix(row.next_attempt_at)
        if row.status == WebhookDeliveryStatus.PENDING
        else None,
        created_at_unix=int(row.created_at.timestamp()),
        last_attempt=attempt,
        correlation_id=cause.correlation_id if cause else None,
        causation_id=cause.message_id if cause else None,
    )


class WebhookService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        outbound: OutboundClient,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._uow = uow
        self._outbound = outbound
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rand = rand
        self._allow_hosts = parse_allow_hosts(settings.outbound_allow_hosts)
        self.policy = webhooks.RetryPolicy(
            base_s=settings.webhooks_retry_base_s,
            max_s=settings.webhooks_retry_max_s,
            window_s=settings.webhooks_retry_window_s,
        )
        self.disable_rule = webhooks.DisableRule(
            failures=settings.webhooks_disable_after_failures, after_s=settings.webhooks_disable_after_s
        )
        self.on_queued: Callable[[], None] = lambda: None

    # ---- subscriptions (commands from the gateway) ------------------------------------------------

    async def handle_command(self, command: Command) -> None:
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            now = self._clock()
            match command:
                case CreateWebhookSubscription():
                    await self._create(uow, command, now)
                case DeleteWebhookSubscription():
                    await self._delete(uow, command, now)
                case EnableWebhookSubscription():
                    await self._enable(uow, command, now)
                case ResendWebhookDelivery():
                    await self._resend(uow, command, now)
        if isinstance(command, EnableWebhookSubscription | ResendWebhookDelivery):
            self.on_queued()

    async def _fail(
        self, uow: UnitOfWork, command: Command, key: str, status: int, error: str, detail: str
    ) -> None:
        failed = CommandFailed(
            command_type=command.type,
            status_code=status,
            error=error,
            detail=detail,
            correlation_id=command.correlation_id,
            causation_id=command.message_id,
        )
        await uow.publish(failed, key=key)

    async def _updated(self, uow: UnitOfWork, sub: WebhookSubscription, cause: Command | None) -> None:
        event = WebhookSubscriptionUpdated(
            subscription=subscription_record(sub),
            correlation_id=cause.correlation_id if cause else sub.correlation_id,
            causation_id=cause.message_id if cause else None,
        )
        await uow.publish(event, key=sub.subscription_id)

    async def _live(
        self, uow: UnitOfWork, command: Command, subscription_id: str
    ) -> WebhookSubscription | None:
        sub = await uow.subscriptions.get(subscription_id, for_update=True)
        if sub is None or sub.status == SubscriptionStatus.DELETED:
            await self._fail(uow, command, subscription_id, 404, "Webhook not found", subscription_id)
            return None
        return sub

    async def _create(self, uow: UnitOfWork, command: CreateWebhookSubscription, now: datetime) -> None:
        try:
            stored_secret = self._stored_secret(command)
        except Undecryptable:
            detail = "The signing secret could not be decrypted"
            await self._fail(uow, command, command.subscription_id, 422, "Invalid encrypted secret", detail)
            return
        await uow.subscriptions.add(
            {
                "subscription_id": command.subscription_id,
                "url": command.url,
                "event_types": list(dict.fromkeys(command.event_types)),
                "description": command.description,
                "signing_secret_encrypted": stored_secret,
                "status": SubscriptionStatus.ACTIVE,
                "consecutive_failures": 0,
                "created_at": now,
                "correlation_id": command.correlation_id,
            }
        )
        sub = await uow.subscriptions.get(command.subscription_id)
        assert sub is not None
        await self._updated(uow, sub, command)
        log.info(
            "notifier.webhook.subscribed", subscription_id=sub.subscription_id, event_types=sub.event_types
        )

    async def _delete(self, uow: UnitOfWork, command: DeleteWebhookSubscription, now: datetime) -> None:
        sub = await self._live(uow, command, command.subscription_id)
        if sub is None:
            return
        sub.status = SubscriptionStatus.DELETED
        dropped = await uow.webhooks.drop_pending(sub.subscription_id, now)
        deleted = WebhookSubscriptionDeleted(
            subscription_id=sub.subscription_id,
            correlation_id=command.correlation_id,
            causation_id=command.message_id,
        )
        await uow.publish(deleted, key=sub.subscription_id)
        log.info("notifier.webhook.deleted", subscription_id=sub.subscription_id, dropped=dropped)

    async def _enable(self, uow: UnitOfWork, command: EnableWebhookSubscription, now: datetime) -> None:
        sub = await self._live(uow, command, command.subscription_id)
        if sub is None:
            return
        if sub.status == SubscriptionStatus.DISABLED:
            sub.status = SubscriptionStatus.ACTIVE
            sub.disabled_reason = None
            sub.consecutive_failures = 0
            sub.failing_since = None
            held = await uow.webhooks.release_held(sub.subscription_id, now)
            log.info("notifier.webhook.enabled", subscription_id=sub.subscription_id, held=held)
        await self._updated(uow, sub, command)

    async def _resend(self, uow: UnitOfWork, command: ResendWebhookDelivery, now: datetime) -> None:
        sub = await self._live(uow, command, command.subscription_id)
        if sub is None:
            return
        row = await uow.webhooks.get(command.delivery_id, for_update=True)
        if row is None or row.subscription_id != sub.subscription_id:
            await self._fail(
                uow, command, sub.subscription_id, 404, "Delivery not found", command.delivery_id
            )
            return
        if sub.status != SubscriptionStatus.ACTIVE:
            await self._fail(
                uow,
                command,
                sub.subscription_id,
                409,
                "Webhook is disabled",
                "Enable it first (POST /api/v1/webhooks/{id}/enable); its held deliveries go out then",
            )
            return
        until = now + timedelta(seconds=self.policy.window_s)
        row = await uow.webhooks.requeue(command.delivery_id, now, until)
        assert row is not None
        await uow.publish(delivery_event(row, None, command), key=sub.subscription_id)

    # ---- bus events → queued deliveries --------------------------------------------------------

    async def handle_event(self, event: Event) -> None:
        """Queue the webhook events `event` makes for every active subscription wanting them."""
        queued: list[str] = []
        if isinstance(event, CampaignUpdated):
            async with self._uow() as uow:
                # The inbox makes the status comparison exact: a redelivered older update is
                # dropped instead of being seen as a change back.
                if not await uow.claim(event.message_id):
                    return
                changed, previous = await uow.campaign_statuses.swap(
                    event.campaign.campaign_id, event.campaign.status
                )
                if changed:
                    queued = await self._queue(uow, webhooks.webhook_events(event, previous))
        else:
            items = webhooks.webhook_events(event)
            if not items:
                return
            async with self._uow() as uow:
                queued = await self._queue(uow, items)
        if queued:
            log.info("notifier.webhook.queued", deliveries=len(queued), source_type=event.type)
            self.on_queued()

    async def _queue(self, uow: UnitOfWork, items: list[webhooks.WebhookEvent]) -> list[str]:
        """Store the events some subscription wants and queue their deliveries: a few statements
        whatever the number of items (a bulk close brings up to 500)."""
        now = self._clock()
        until = now + timedelta(seconds=self.policy.window_s)
        subscribers: dict[str, list[str]] = {}
        for event_type in dict.fromkeys(item.event_type for item in items):
            subscribers[event_type] = await uow.subscriptions.active_for(event_type)
        wanted = [item for item in items if subscribers[item.event_type]]
        if not wanted:
            return []
        await uow.webhooks.add_events(
            [
                {
                    "event_id": item.event_id,
                    "event_type": item.event_type,
                    "body": item.body,
                    "occurred_at": item.occurred_at,
                }
                for item in wanted
            ]
        )
        rows = [
            {
                "delivery_id": webhooks.delivery_id(sid, item.event_id),
                "subscription_id": sid,
                "event_id": item.event_id,
                "event_type": item.event_type,
                "status": WebhookDeliveryStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "retry_until": until,
                "manual": False,
                "created_at": now,
            }
            for item in wanted
            for sid in subscribers[item.event_type]
        ]
        return await uow.webhooks.add_deliveries(rows)

    # ---- the dispatcher's steps ----------------------------------------------------------------

    async def claim(self, limit: int) -> list[ClaimedDelivery]:
        now = self._clock()
        async with self._uow() as uow:
            return await uow.webhooks.claim_due(
                now, limit, uuid.uuid4(), now + timedelta(seconds=self._settings.webhooks_lease_s)
            )

    def _stored_secret(self, command: CreateWebhookSubscription) -> str:
        """The command's signing secret re-bound from its field to the subscription's row (the clear
        value stays inside bus.secrets). Raises `Undecryptable`."""
        return self._settings.keyring.rebind(
            command.signing_secret_encrypted,
            from_context=message_context("signing_secret_encrypted"),
            to_context=column_context(WebhookSubscription.signing_secret_encrypted, command.subscription_id),
        )

    def _secret(self, claimed: ClaimedDelivery) -> str:
        """The subscription's signing secret; raises `Undecryptable` (a key no longer configured,
        or a ciphertext moved from another row)."""
        context = column_context(WebhookSubscription.signing_secret_encrypted, claimed.subscription_id)
        return self._settings.keyring.decrypt(claimed.signing_secret_encrypted, context=context)

    async def deliver(self, claimed: ClaimedDelivery) -> None:
        """One attempt of a claimed delivery, then its record (only while the lease holds)."""
        async with self._uow() as uow:
            if not await uow.webhooks.lease_held(claimed.delivery_id, claimed.lease_token, self._clock()):
                log.warning("notifier.webhook.lease_lost", delivery_id=claimed.delivery_id, before="send")
                return
        attempt_no = claimed.attempts + 1
        started = self._clock()
        t0 = time.monotonic()
        status_code: int | None = None
        content = b""
        retry_after: float | None = None
        error: str | None = None
        try:
            secret = self._secret(claimed)
        except Undecryptable:
            secret = None
            error = "signing secret cannot be decrypted with SWITCHBOARD_SECRET_KEY"
        if secret is not None:
            body = claimed.body.encode()
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Switchboard-Webhooks/1",
                webhooks.SIGNATURE_HEADER: webhooks.signature_header(secret, int(started.timestamp()), body),
                "Switchboard-Event-Id": claimed.event_id,
                "Switchboard-Event-Type": claimed.event_type,
                "Switchboard-Delivery-Id": claimed.delivery_id,
                "Switchboard-Delivery-Attempt": str(attempt_no),
            }
            parts = urlsplit(claimed.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            allow_http = bool(parts.hostname) and allowlisted(self._allow_hosts, parts.hostname or "", port)
            loop = asyncio.get_running_loop()
            try:
                response = await self._outbound.request(
                    "POST",
                    claimed.url,
                    deadline=loop.time() + self._settings.webhooks_timeout_s,
                    content=body,
                    headers=headers,
                    allow_http=allow_http,
                )
                status_code, content = response.status_code, response.content
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if not webhooks.is_success(status_code):
                    error = f"answered {status_code}"
            except OutboundRefused as exc:
                error = f"refused: {exc.reason}"
            except OutboundFailed as exc:
                status_code = exc.status_code  # a reply past the size cap still says what it was
                if not (
                    exc.code == "too_large" and status_code is not None and webhooks.is_success(status_code)
                ):
                    error = f"{exc.code}: {exc.detail}"
                # else delivered: the receiver took it (2xx); only its reply's body is not kept
        attempt = WebhookAttempt(
            attempt=attempt_no,
            started_at_ms=int(started.timestamp() * 1000),
            duration_ms=int((time.monotonic() - t0) * 1000),
            status_code=status_code,
            response_excerpt=webhooks.excerpt(content) if content else None,
            error=error,
            manual=claimed.manual,
        )
        await self._record(claimed, attempt, retry_after)

    async def _record(
        self, claimed: ClaimedDelivery, attempt: WebhookAttempt, retry_after: float | None
    ) -> None:
        now = self._clock()
        ok = attempt.error is None
        values: dict[str, object] = {
            "attempts": attempt.attempt,
            "manual": False,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
        }
        if ok:
            values |= {"status": WebhookDeliveryStatus.DELIVERED, "finished_at": now}
        else:
            next_at = self.policy.next_attempt_at(
                attempt.attempt, now, claimed.retry_until, retry_after, self._rand
            )
            if next_at is None:
                values |= {"status": WebhookDeliveryStatus.FAILED, "finished_at": now}
            else:
                values |= {"next_attempt_at": next_at}
        async with self._uow() as uow:
            sub = await uow.subscriptions.get(claimed.subscription_id, for_update=True)
            row = await uow.webhooks.record(claimed.delivery_id, claimed.lease_token, values)
            if row is None or sub is None:
                log.warning("notifier.webhook.lease_lost", delivery_id=claimed.delivery_id, before="record")
                return
            streak = sub.consecutive_failures
            if ok:
                sub.consecutive_failures, sub.failing_since, sub.last_success_at = 0, None, now
            else:
                sub.consecutive_failures += 1
                sub.failing_since = sub.failing_since or now
                if sub.status == SubscriptionStatus.ACTIVE and self.disable_rule.should_disable(
                    sub.consecutive_failures, sub.failing_since, now
                ):
                    sub.status = SubscriptionStatus.DISABLED
                    sub.disabled_reason = self.disable_rule.reason()
                    DISABLED.inc()
                    log.warning("notifier.webhook.disabled", subscription_id=sub.subscription_id)
            # The gateway shows the streak (consecutive_failures, failing_since_unix): publish when it
            # starts, grows, resets or disables the subscription; a success without a streak
            # (the usual attempt) changes nothing shown, so publishes nothing.
            if sub.consecutive_failures != streak:
                await self._updated(uow, sub, None)
            await uow.publish(delivery_event(row, attempt), key=claimed.subscription_id)
        ATTEMPTS.labels("ok" if ok else "failed").inc()
        log.info(
            "notifier.webhook.attempted",
            delivery_id=claimed.delivery_id,
            attempt=attempt.attempt,
            status_code=attempt.status_code,
            error=attempt.error,
            status=row.status,
        )

    async def prune(self) -> int:
        """Delete deliveries finished longer than WEBHOOKS_RETENTION_HOURS ago (and their events)."""
        if not self._settings.webhooks_retention_hours:
            return 0
        cutoff = self._clock() - timedelta(hours=self._settings.webhooks_retention_hours)
        total = 0
        while True:
            async with self._uow() as uow:
                deleted = await uow.webhooks.prune_finished(cutoff, 500)
            total += deleted
            if deleted < 500:
                return total


class Dispatcher:
    """Keeps up to WEBHOOKS_CONCURRENCY deliveries in flight: claims as many due rows as it has free
    slots, when woken (a delivery queued in this process) or every WEBHOOKS_POLL_INTERVAL_S (rows
    queued by other replicas, retries coming due)."""

    def __init__(self, service: WebhookService, settings: Settings) -> None:
        self._service = service
        self._concurrency = settings.webhooks_concurrency
        self._poll_s = settings.webhooks_poll_interval_s
        self._grace_s = settings.webhooks_timeout_s
        self._changed = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        service.on_queued = self.wake

    def wake(self) -> None:
        self._changed.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notifier.webhooks.dispatcher")

    async def stop(self) -> None:
        """Stop claiming; give in-flight sends their timeout to finish (an unfinished one is sent
        again after its lease by whichever worker claims it)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=self._grace_s)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("notifier.webhook.deliver_failed", error=repr(exc))
        self._changed.set()

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            free = self._concurrency - len(self._inflight)
            claimed: list[ClaimedDelivery] = []
            if free > 0:
                try:
                    claimed = await self._service.claim(free)
                except Exception as exc:
                    log.warning("notifier.webhook.claim_failed", error=repr(exc))
            for item in claimed:
                task = asyncio.create_task(self._service.deliver(item))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if claimed and len(claimed) == free:
                # Every slot is taken: go on as soon as one frees up.
                await self._changed.wait()
                continue
            with contextlib.suppress(TimeoutError):
                # The poll interval is the schedule of retries coming due, not synchronisation.
                await asyncio.wait_for(self._changed.wait(), timeout=self._poll_s)
