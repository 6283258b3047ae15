"""Use cases of the tool-webhooks service. Services never commit: the unit of work does.

- `signature_check` + `receive_post_call`: check the signature header before the body is read, the
  HMAC as the body streams in; then in ONE transaction claim the webhook's deterministic message id
  in the inbox and write `PostCallWebhookReceived` (and the transcript's parts) to the outbox. An
  authentic delivery is never refused: unknown types and post_call_audio are skipped without being
  parsed whole, unreadable ones are kept in `kept_deliveries`.
- `register_post_call_webhook`: create the workspace webhook upstream, point the ConvAI settings at
  it, store its secret encrypted and emit `PostCallWebhookRegistered` (or `CommandFailed`).
- `ToolService`: the projections (conversations, customer sessions, e-mail templates) and the
  mid-call tools (products, orders, e-mail), each tool answer spoken-style JSON within its budget.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from cachetools import TTLCache

from bus import metrics as bus_metrics
from bus.context import current_correlation_id
from bus.errors import CommandError
from bus.ledger import command_failed
from bus.limits import MessageTooLarge
from bus.secrets import Undecryptable, column_context, message_context, read_tool_token, v1_tool_token_valid
from contracts import topics
from contracts.base import Event
from contracts.notifier import SendEmail
from contracts.provisioning import (
    EcommerceToolsCreated,
    EmailTemplateCreated,
    EmailTemplateDeleted,
    ToolCreated,
    ToolDeleted,
    ToolToken,
    ToolTokenRotated,
)
from contracts.telephony import CallPlaced, CustomerSessionDeleted, CustomerSessionStored
from contracts.webhooks import PostCallWebhookReceived, PostCallWebhookRegistered, RegisterPostCallWebhook
from elevenlabs_client import ElevenLabsClient, UpstreamError
from tool_webhooks import call_control, domain, metrics
from tool_webhooks import stores as stores_mod
from tool_webhooks.domain import JSON
from tool_webhooks.models import (
    CONSUMER,
    POST_CALL_CONSUMER,
    PROJECTION_CONSUMER,
    Conversation,
    WebhookRegistration,
)
from tool_webhooks.settings import Settings
from tool_webhooks.spool import SpooledBody
from tool_webhooks.stores import StoreClient
from tool_webhooks.uow import UnitOfWork

log = structlog.get_logger("tool_webhooks.service")

# Workspace webhooks carry their creation time; allow for clock skew between us and ElevenLabs.
_WEBHOOK_RECOVERY_SKEW_S = 5

# Rows deleted per transaction by retention: short transactions on tables tool calls read.
PRUNE_BATCH = 500
# How often a tool call for a conversation not yet known looks for its call.placed projection.
_CALL_PLACED_POLL_S = 0.05

ReceiveOutcome = Literal["accepted", "duplicate", "ignored", "kept"]
ProvisioningProjected = (
    EmailTemplateCreated
    | EmailTemplateDeleted
    | ToolCreated
    | EcommerceToolsCreated
    | ToolTokenRotated
    | ToolDeleted
)


@dataclass(frozen=True)
class _Read:
    """What a verified delivery says: its envelope and events (none for types we do not publish)."""

    envelope: domain.Envelope
    events: list[Event]


@dataclass(frozen=True)
class Registration:
    webhook_id: str
    webhook_url: str
    #: ElevenLabs accepted `retry_enabled` (see `WebhookService._enable_retries`).
    retries_enabled: bool


class WebhookService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        elevenlabs: ElevenLabsClient,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._uow = uow
        self.elevenlabs = elevenlabs
        self._settings = settings
        self._clock = clock

    # ---- post-call webhooks ------------------------------------------------------------------

    async def _secrets(self, uow: UnitOfWork) -> list[str]:
        """The configured secret and the latest registration's; a delivery may be signed by either."""
        secrets = []
        if configured := self._settings.elevenlabs_webhook_secret.get_secret_value():
            secrets.append(configured)
        latest = await uow.registrations.latest()
        if latest is not None:
            context = column_context(WebhookRegistration.secret_encrypted, latest.id)
            try:
                secrets.append(self._settings.keyring.decrypt(latest.secret_encrypted, context=context))
            except Undecryptable:  # made with a key no longer configured, or moved from another row
                log.warning("tool_webhooks.secret.undecryptable", webhook_id=latest.webhook_id)
        return secrets

    async def signature_check(self, header: str | None) -> domain.SignatureCheck:
        """The HMAC to feed with the body; raises `InvalidSignature` (missing, malformed or stale
        header, no secret) before a byte of the body is read."""
        parsed = domain.parse_signature_header(
            header,
            now=self._clock(),
            tolerance_past_s=self._settings.webhook_tolerance_past_s,
            tolerance_future_s=self._settings.webhook_tolerance_future_s,
        )
        async with self._uow() as uow:
            secrets = await self._secrets(uow)
        return domain.SignatureCheck(parsed, secrets)

    async def receive_post_call(self, check: domain.SignatureCheck, body: SpooledBody) -> ReceiveOutcome:
        """`body` has been fed to `check` whole. Raises `InvalidSignature` (nothing written)."""
        check.verify()
        received_at = int(self._clock())
        correlation_id = current_correlation_id()
        try:
            # Off the event loop: parsing megabytes must not delay the mid-call tools' answers.
            read = await asyncio.to_thread(self._read, body, received_at, correlation_id)
        except domain.MalformedPayload as exc:
            return await self._keep(body, exc.detail)
        if not read.events:
            log.info("tool_webhooks.post_call.ignored", webhook_type=read.envelope.type, size_bytes=body.size)
            return "ignored"
        event = read.events[0]
        assert isinstance(event, PostCallWebhookReceived)
        # Never log the body: transcripts are personal data.
        bound = log.bind(webhook_type=read.envelope.type, conversation_id=event.conversation_id)
        try:
            async with self._uow() as uow:
                if not await uow.claim(event.message_id, POST_CALL_CONSUMER):
                    bound.info("tool_webhooks.post_call.duplicate")
                    return "duplicate"
                for message in read.events:
                    await uow.publish(message, key=event.conversation_id)
        except MessageTooLarge as exc:  # e.g. huge data collection results: nothing was written
            return await self._keep(body, str(exc))
        bound.info(
            "tool_webhooks.post_call.accepted",
            message_id=event.message_id,
            transcript_parts=len(read.events) - 1,
            size_bytes=body.size,
        )
        return "accepted"

    def _read(self, body: SpooledBody, received_at: int, correlation_id: str | None) -> _Read:
        """Skim first (long strings such as base64 audio left out), so a type we do not publish is
        never parsed whole; then parse the types we publish. Raises `MalformedPayload`."""
        limit = self._settings.max_parse_bytes
        try:
            head = domain.parse_envelope(domain.skim(body.chunks(), max_bytes=limit))
        except domain.TooLargeToSkim as exc:
            raise domain.MalformedPayload(f"Body over {limit} bytes once long strings are left out") from exc
        if head.type not in domain.PUBLISHED_TYPES:
            return _Read(head, [])
        if body.size > limit:
            raise domain.MalformedPayload(f"A {head.type} body over {limit} bytes")
        envelope = domain.parse_envelope(body.head(limit))
        received = domain.received_event(envelope, received_at=received_at, correlation_id=correlation_id)
        parts = domain.transcript_parts(
            envelope,
            max_part_bytes=domain.transcript_part_bytes(self._settings.bus_max_message_bytes),
            correlation_id=correlation_id,
        )
        return _Read(envelope, [received, *parts])

    async def _keep(self, body: SpooledBody, reason: str) -> ReceiveOutcome:
        """An authentic delivery we cannot read: ElevenLabs will not send it again, so keep it."""
        limit = self._settings.max_parse_bytes
        async with self._uow() as uow:
            kept_id = await uow.kept.add(
                reason=reason,
                size_bytes=body.size,
                sha256=body.sha256,
                body=body.head(limit),
                truncated=body.size > limit,
                correlation_id=current_correlation_id(),
            )
        if kept_id is None:
            log.info("tool_webhooks.post_call.kept_duplicate", sha256=body.sha256)
            return "duplicate"
        log.error("tool_webhooks.post_call.kept", kept_id=kept_id, reason=reason, size_bytes=body.size)
        return "kept"

    # ---- registration ------------------------------------------------------------------------

    async def register_post_call_webhook(
        self, public_url: str, *, command: RegisterPostCallWebhook | None = None
    ) -> Registration:
        """Register upstream and record it; raises `CommandError` (`UpstreamError` for ElevenLabs) on failure.

        With `command`, the inbox claim happens in the recording transaction; a command already
        handled by a concurrent delivery records nothing more (its registration stands).
        """
        webhook_url = domain.post_call_webhook_url(public_url)
        created = await self._create_webhook(webhook_url)
        webhook_id, secret = created.get("webhook_id"), created.get("webhook_secret")
        if not isinstance(webhook_id, str) or not isinstance(secret, str) or not secret:
            raise CommandError(502, "ElevenLabs unavailable", "Webhook created without id or secret")
        retries_enabled = await self._enable_retries(webhook_id)
        await self.elevenlabs.update_convai_settings(domain.convai_webhook_settings(webhook_id))
        async with self._uow() as uow:
            if command is not None and not await uow.claim(command.message_id):
                return Registration(webhook_id, webhook_url, retries_enabled)
            keyring = self._settings.keyring
            await uow.registrations.add(
                webhook_id,
                webhook_url,
                lambda row_id: keyring.encrypt(
                    secret, context=column_context(WebhookRegistration.secret_encrypted, row_id)
                ),
                command.message_id if command else None,
            )
            await uow.publish(
                PostCallWebhookRegistered(
                    webhook_id=webhook_id,
                    webhook_url=webhook_url,
                    retries_enabled=retries_enabled,
                    correlation_id=command.correlation_id if command else current_correlation_id(),
                    causation_id=command.message_id if command else None,
                ),
                key=webhook_id,
            )
        log.info(
            "tool_webhooks.webhook.registered",
            webhook_id=webhook_id,
            webhook_url=webhook_url,
            retries_enabled=retries_enabled,
        )
        return Registration(webhook_id, webhook_url, retries_enabled)

    async def _enable_retries(self, webhook_id: str) -> bool:
        """Have ElevenLabs retry a transcription webhook we could not take (a restart, a deploy, a
        paused worker): without it a missed delivery waits for reconciliation
        (`TELEPHONY_RECONCILE_AFTER_S`), and its analysis and transcript never come. Retries only
        shorten that wait, so a refusal does not stop the registration: it is logged, and the
        answer says so (`retries_enabled: false`). Returns whether ElevenLabs accepted."""
        try:
            await self.elevenlabs.update_workspace_webhook(
                webhook_id, name=domain.WEBHOOK_NAME, is_disabled=False, retry_enabled=True
            )
        except UpstreamError as exc:
            log.warning(
                "tool_webhooks.webhook.retries_not_enabled",
                webhook_id=webhook_id,
                status_code=exc.status_code,
                detail=exc.detail,
            )
            return False
        return True

    async def _create_webhook(self, webhook_url: str) -> JSON:
        """`{webhook_id, webhook_secret}` of a new workspace webhook; exactly one is left upstream.

        ElevenLabs shows the signing secret only in the create answer, so a webhook whose answer
        was lost (`OutcomeUnknownError`) is of no use: it is deleted, then created again.
        """
        since = int(time.time()) - _WEBHOOK_RECOVERY_SKEW_S

        async def delete_lost() -> JSON | None:
            for hook in await self.elevenlabs.list_workspace_webhooks():
                if domain.lost_registration(hook, webhook_url, since):
                    await self.elevenlabs.delete_workspace_webhook(str(hook["webhook_id"]))
                    log.warning("tool_webhooks.webhook.lost_answer_deleted", webhook_id=hook["webhook_id"])
            return None

        return await self.elevenlabs.create_once(
            lambda: self.elevenlabs.create_workspace_webhook(domain.WEBHOOK_NAME, webhook_url),
            delete_lost,
            what="workspace webhook",
        )

    async def handle_register_command(self, command: RegisterPostCallWebhook) -> None:
        """`RegisterPostCallWebhook` from the bus: exactly one outcome event per command."""
        async with self._uow() as uow:
            if await uow.inbox.seen(command.message_id):
                return
        try:
            await self.register_post_call_webhook(command.public_url, command=command)
        except CommandError as exc:
            log.warning("tool_webhooks.webhook.register_failed", status=exc.status_code, error=exc.error)
            async with self._uow() as uow:
                if not await uow.claim(command.message_id):
                    return
                await uow.publish(command_failed(command, exc), key=None)


# ---- mid-call tools ---------------------------------------------------------------------------

ToolAnswer = dict[str, Any]


class ToolService:
    """Projections (telephony/provisioning events) and the mid-call tools ElevenLabs calls.

    Tool answers are always JSON an agent can read aloud: store trouble becomes a `message` and an
    `error` code, never an exception. Each tool answer has one deadline (TOOL_RESPONSE_BUDGET_S).
    """

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        stores: StoreClient,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._uow = uow
        self._stores = stores
        self._settings = settings
        self._clock = clock
        self._cache: TTLCache[tuple[str, str, int], list[stores_mod.Product]] | None = (
            TTLCache(maxsize=settings.product_cache_max_entries, ttl=settings.product_cache_ttl_s)
            if settings.product_cache_ttl_s > 0
            else None
        )
        # A conversation's store binding never changes once its call is placed, so the (still
        # encrypted) row is kept briefly: a tool call then needs no database round trip. With the
        # row's updated_at, so a binding is never served after retention deleted its row.
        self._bindings: TTLCache[str, tuple[str, str, datetime]] = TTLCache(maxsize=10_000, ttl=300)

    # ---- projections (one transaction each, inbox-deduplicated) ------------------------------

    async def project_telephony(
        self, event: CallPlaced | CustomerSessionStored | CustomerSessionDeleted
    ) -> None:
        async with self._uow() as uow:
            if not await uow.claim(event.message_id, PROJECTION_CONSUMER):
                return
            if isinstance(event, CallPlaced):
                await uow.conversations.upsert(
                    event.conversation_id,
                    agent_id=event.agent_id,
                    ecommerce_platform=event.ecommerce_platform,
                    ecommerce_credentials_encrypted=self._stored_credentials(event),
                    sender_email=event.sender_email,
                    call=call_control.call_of(event),
                )
                info = event.customer_info
                if info is not None:
                    await uow.sessions.upsert(
                        event.conversation_id,
                        name=info.name,
                        email=info.email,
                        phone=info.phone,
                        sender_email=event.sender_email,
                    )
            elif isinstance(event, CustomerSessionStored):
                await uow.sessions.upsert(
                    event.conversation_id,
                    name=event.customer_info.name,
                    email=event.customer_info.email,
                    phone=event.customer_info.phone,
                    sender_email=event.sender_email,
                )
            else:
                await uow.sessions.delete(event.conversation_id)
        log.info("tool_webhooks.projection.applied", type=event.type)

    async def project_provisioning(self, event: ProvisioningProjected) -> None:
        """E-mail templates, and the token state of every tool that calls us (idempotent: inbox)."""
        async with self._uow() as uow:
            if not await uow.claim(event.message_id, PROJECTION_CONSUMER):
                return
            match event:
                case EmailTemplateCreated(template=template, tool=tool):
                    await uow.templates.upsert(
                        template.template_id,
                        template.subject_template,
                        template.body_template,
                        [p.model_dump() for p in template.parameters],
                    )
                    await self._token_issued(uow, tool.tool_id, tool.token)
                case EmailTemplateDeleted(template_id=template_id, tool_id=tool_id):
                    await uow.templates.delete(template_id)
                    if tool_id is not None:
                        await uow.tool_tokens.deleted(tool_id, event.occurred_at)
                case ToolCreated(tool=tool):
                    await self._token_issued(uow, tool.tool_id, tool.token)
                case EcommerceToolsCreated(products_tool=products, orders_tool=orders):
                    await self._token_issued(uow, products.tool_id, products.token)
                    await self._token_issued(uow, orders.tool_id, orders.token)
                case ToolTokenRotated(tool_id=tool_id, token=token, previous_valid_until_unix=until):
                    await self._token_issued(uow, tool_id, token, datetime.fromtimestamp(until, UTC))
                case ToolDeleted(tool_id=tool_id):
                    await uow.tool_tokens.deleted(tool_id, event.occurred_at)
        log.info("tool_webhooks.projection.applied", type=event.type)

    @staticmethod
    async def _token_issued(
        uow: UnitOfWork, tool_id: str, token: ToolToken | None, previous_valid_until: datetime | None = None
    ) -> None:
        if token is not None:  # custom webhook tools call their own URL, never us
            await uow.tool_tokens.issued(
                tool_id, token.token_id, token.route, token.generation, previous_valid_until
            )

    def _stored_credentials(self, event: CallPlaced) -> str | None:
        """The event's store credentials re-bound from its field to the conversation's row (the clear
        value stays inside bus.secrets); None when no configured key reads them (no store then)."""
        if not event.ecommerce_credentials_encrypted:
            return None
        try:
            return self._settings.keyring.rebind(
                event.ecommerce_credentials_encrypted,
                from_context=message_context("ecommerce_credentials_encrypted"),
                to_context=column_context(
                    Conversation.ecommerce_credentials_encrypted, event.conversation_id
                ),
            )
        except Undecryptable:
            log.warning(
                "tool_webhooks.store.credentials_undecryptable", conversation_id=event.conversation_id
            )
            return None

    # ---- e-commerce --------------------------------------------------------------------------

    async def tool_token_refusal(self, route: str, token: str | None) -> domain.TokenRefusal | None:
        """Why a mid-call tool call to `route` carrying `token` is refused; None when it may proceed.

        The token must be signed for this route (`bus.secrets.read_tool_token`) and name a tool we
        know, not deleted, at a generation it still accepts (`domain.tool_token_refusal`).
        """
        if not token:
            return "missing"
        keyring = self._settings.keyring
        claim = read_tool_token(keyring, route, token)
        if claim is None:
            if self._settings.accept_v1_tool_tokens and v1_tool_token_valid(keyring, route, token):
                return None
            return "invalid"
        async with self._uow() as uow:
            state = await uow.tool_tokens.find(claim.token_id, route)
        return domain.tool_token_refusal(
            claim.generation,
            known_generation=state.generation if state is not None else None,
            previous_valid_until=state.previous_valid_until if state is not None else None,
            deleted=state is not None and state.deleted_at is not None,
            now=datetime.fromtimestamp(self._clock(), UTC),
        )

    async def _credentials(self, conversation_id: str, deadline: float) -> stores_mod.StoreCredentials | None:
        """The store of a conversation's call, or None (no such call, no store, unreadable).

        A conversation not yet known is waited for, up to `TOOL_WEBHOOKS_CALL_PLACED_WAIT_S` and
        half the time left before `deadline` (event-loop time): its `call.placed` event may still be
        on its way (telephony publishes it after the dial's answer, through its outbox and Kafka, and
        a loaded stack can take longer than the ringing before the agent's first tool call)."""
        binding = self._bindings.get(conversation_id)
        if binding is not None and self._outlived(binding[2]):
            # Retention deletes the row (maybe on another replica): memory must not outlive it.
            self._bindings.pop(conversation_id, None)
            binding = None
        if binding is None:
            conversation = await self._conversation_awaited(conversation_id, deadline)
            if conversation is None or not conversation.ecommerce_credentials_encrypted:
                return None  # not cached: a late projection is read on the next call
            binding = (
                str(conversation.ecommerce_platform),
                conversation.ecommerce_credentials_encrypted,
                conversation.updated_at,
            )
            if not self._outlived(binding[2]):
                self._bindings[conversation_id] = binding
        platform, token, _ = binding
        # Decrypted here only, kept in memory for this lookup only; only this row's ciphertext reads.
        context = column_context(Conversation.ecommerce_credentials_encrypted, conversation_id)
        try:
            clear = self._settings.keyring.decrypt(token, context=context)
        except Undecryptable:
            log.warning("tool_webhooks.store.credentials_undecryptable", conversation_id=conversation_id)
            return None
        return stores_mod.parse_credentials(platform, clear)

    async def _conversation_awaited(self, conversation_id: str, deadline: float) -> Conversation | None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        give_up = now + min(self._settings.call_placed_wait_s, (deadline - now) / 2)
        pending = False
        while True:
            async with self._uow() as uow:
                conversation = await uow.conversations.get(conversation_id)
            if conversation is not None or loop.time() >= give_up:
                if pending:
                    log.info("tool_webhooks.store.call_placed_awaited", found=conversation is not None)
                return conversation
            if not pending:
                log.info("tool_webhooks.store.call_placed_pending", conversation_id=conversation_id)
                pending = True
            # Polling the projection: the call.placed event may be consumed by another replica.
            await asyncio.sleep(min(_CALL_PLACED_POLL_S, max(0.0, give_up - loop.time())))

    def _outlived(self, updated_at: datetime) -> bool:
        """True when retention may already have deleted a row last updated at `updated_at`."""
        hours = self._settings.conversation_retention_hours
        return hours > 0 and updated_at < datetime.fromtimestamp(self._clock(), UTC) - timedelta(hours=hours)

    # ---- retention ---------------------------------------------------------------------------

    async def prune_expired(self, now: datetime | None = None) -> dict[str, int]:
        """Delete conversations and customer sessions untouched for TOOL_WEBHOOKS_CONVERSATION_
        RETENTION_HOURS, kept deliveries received before that, and e-mail invocations older than that
        and than their dedupe window (so a repeat within the window is still recognised); rows
        deleted per table."""
        hours = self._settings.conversation_retention_hours
        if not hours:
            return {}
        now = now or datetime.fromtimestamp(self._clock(), UTC)
        cutoff = now - timedelta(hours=hours)
        invocation_cutoff = now - max(
            timedelta(hours=hours), timedelta(seconds=self._settings.email_dedupe_window_s)
        )

        async def conversations(uow: UnitOfWork) -> int:
            pruned_ids = await uow.conversations.prune(cutoff, PRUNE_BATCH)
            for conversation_id in pruned_ids:  # this replica at once; others via `_outlived`
                self._bindings.pop(conversation_id, None)
            return len(pruned_ids)

        pruned = {
            "conversations": await self._prune_in_batches(conversations),
            "customer_sessions": await self._prune_in_batches(
                lambda uow: uow.sessions.prune(cutoff, PRUNE_BATCH)
            ),
            "email_invocations": await self._prune_in_batches(
                lambda uow: uow.invocations.prune(invocation_cutoff, PRUNE_BATCH)
            ),
            # Transcripts are personal data: an unreadable delivery is kept as long as call data.
            "kept_deliveries": await self._prune_in_batches(lambda uow: uow.kept.prune(cutoff, PRUNE_BATCH)),
        }
        for table, rows in pruned.items():
            if rows:
                bus_metrics.PRUNED.labels(CONSUMER, table).inc(rows)
        log.info("tool_webhooks.retention.pruned", **pruned)
        return pruned

    async def _prune_in_batches(self, batch: Callable[[UnitOfWork], Awaitable[int]]) -> int:
        total = 0
        while True:
            async with self._uow() as uow:
                deleted = await batch(uow)
            total += deleted
            if deleted < PRUNE_BATCH:
                return total

    async def _within_budget(self, tool: str, work: Callable[[float], Awaitable[ToolAnswer]]) -> ToolAnswer:
        loop = asyncio.get_running_loop()
        budget = self._settings.tool_response_budget_s
        # Store calls get a slightly earlier deadline so their own timeout answers first.
        deadline = loop.time() + budget * 0.95
        try:
            async with asyncio.timeout(budget):
                answer = await work(deadline)
        except TimeoutError:
            answer = {"message": domain.store_error_message("timeout"), "error": "timeout"}
        except stores_mod.StoreError as exc:
            log.warning("tool_webhooks.store.failed", tool=tool, code=exc.code, detail=exc.detail)
            answer = {"message": domain.store_error_message(exc.code), "error": exc.code}
        metrics.TOOL_CALLS.labels(tool, answer.get("error", "ok")).inc()
        return answer

    async def products(self, body: Mapping[str, Any]) -> ToolAnswer:
        conversation_id = _text(body.get("conversation_id"))
        query = _text(body.get("query")) or ""
        limit = min(
            _positive_int(body.get("limit")) or self._settings.tool_max_results,
            self._settings.tool_max_results,
        )

        async def work(deadline: float) -> ToolAnswer:
            creds = await self._credentials(conversation_id, deadline) if conversation_id else None
            if creds is None:
                return {"products": [], "count": 0, "message": domain.NO_STORE_MESSAGE, "error": "no_store"}
            key = (creds.cache_identity(), stores_mod.search_terms(query).lower(), limit)
            found = self._cache.get(key) if self._cache is not None else None
            if found is None:
                found = await self._stores.products(creds, query, limit, deadline)
                if self._cache is not None:
                    self._cache[key] = found
            products = [p.as_json() for p in found]
            return {
                "products": products,
                "count": len(products),
                "message": domain.products_message(products, query),
            }

        answer = await self._within_budget("products", work)
        answer.setdefault("products", [])
        answer.setdefault("count", len(answer["products"]))
        return answer

    async def orders(self, body: Mapping[str, Any]) -> ToolAnswer:
        """`{conversation_id, order_number?, email?, postcode?}` → the caller's orders, read out only
        when their billing contact is the caller's (`domain.order_matches_caller`)."""
        conversation_id = _text(body.get("conversation_id"))
        order_number = _text(body.get("order_number"))
        email = _text(body.get("email"))
        postcode = _text(body.get("postcode"))

        async def work(deadline: float) -> ToolAnswer:
            creds = await self._credentials(conversation_id, deadline) if conversation_id else None
            if creds is None or conversation_id is None:
                return {"orders": [], "message": domain.NO_STORE_MESSAGE, "error": "no_store"}
            if not order_number and not email:
                return {
                    "orders": [],
                    "message": "I need the order number, or the e-mail address used for the order.",
                    "error": "missing_parameters",
                }
            if email and not order_number and not stores_mod.valid_email(email):
                return {
                    "orders": [],
                    "message": "That e-mail address doesn't look right. Could you spell it for me?",
                    "error": "invalid_email",
                }
            caller = await self._caller(conversation_id, email, postcode)
            found = await self._stores.orders(
                creds, order_number, email, self._settings.tool_max_results, deadline
            )
            verified = [
                o
                for o in found
                if domain.order_matches_caller(caller, o.billing_email, o.billing_phone, o.billing_postcode)
            ]
            if found and not verified:
                return {"orders": [], "message": domain.NOT_VERIFIED_MESSAGE, "error": "not_verified"}
            orders = [o.as_json() for o in verified[: self._settings.tool_max_results]]
            return {"orders": orders, "message": domain.orders_message(orders, by_number=bool(order_number))}

        answer = await self._within_budget("orders", work)
        answer.setdefault("orders", [])
        return answer

    async def _caller(self, conversation_id: str, email: str | None, postcode: str | None) -> domain.Caller:
        async with self._uow() as uow:
            session = await uow.sessions.get(conversation_id)
        return domain.Caller(
            session_email=session.email if session is not None else None,
            session_phone=session.phone if session is not None else None,
            given_email=email,
            given_postcode=postcode,
        )

    # ---- e-mail ------------------------------------------------------------------------------

    async def send_email(self, template_id: str, body: Mapping[str, Any]) -> ToolAnswer:
        """Render and queue one e-mail; the same invocation within the window is sent once."""
        conversation_id = _text(body.get("conversation_id"))
        if not conversation_id:
            return _email_answer(False, domain.NO_CONVERSATION_MESSAGE, "missing_conversation")
        bound = log.bind(conversation_id=conversation_id, template_id=template_id)
        async with self._uow() as uow:
            template = await uow.templates.get(template_id)
            if template is None:
                bound.warning("tool_webhooks.email.unknown_template")
                return _email_answer(False, domain.UNKNOWN_TEMPLATE_MESSAGE, "unknown_template")
            params = domain.template_params(template.parameters)
            values = domain.parameter_values(params, body)
            if missing := domain.missing_required(params, values):
                return _email_answer(False, domain.missing_message(missing), "missing_parameters")
            session = await uow.sessions.get(conversation_id)
            to_email = session.email.strip() if session is not None and session.email else ""
            if not to_email or not stores_mod.valid_email(to_email):
                return _email_answer(False, domain.NO_EMAIL_MESSAGE, "no_email")
            assert session is not None
            conversation = await uow.conversations.get(conversation_id)
            sender = session.sender_email or (conversation.sender_email if conversation else None)
            placeholders = domain.placeholder_values(values, session.name, to_email)
            key = domain.invocation_key(conversation_id, template_id, values)
            now = self._clock()
            first_seen = datetime.fromtimestamp(int(now * 1_000_000) / 1_000_000, UTC)
            message_id = domain.invocation_message_id(key, int(now * 1_000_000))
            cutoff = datetime.fromtimestamp(now - self._settings.email_dedupe_window_s, UTC)
            if await uow.invocations.start(key, first_seen, message_id, cutoff):
                await uow.publish(
                    SendEmail(
                        message_id=message_id,
                        correlation_id=current_correlation_id(),
                        conversation_id=conversation_id,
                        template_id=template_id,
                        to_email=to_email,
                        to_name=domain.one_line(session.name),
                        from_email=domain.one_line(sender),
                        subject=domain.render_subject(template.subject_template, placeholders),
                        body=domain.render(template.body_template, placeholders),
                    ),
                    key=conversation_id,
                    topic=topics.NOTIFIER_COMMANDS,
                )
                bound.info("tool_webhooks.email.queued", message_id=message_id)
                metrics.TOOL_CALLS.labels("email", "queued").inc()
            else:
                bound.info("tool_webhooks.email.duplicate")
                metrics.TOOL_CALLS.labels("email", "duplicate").inc()
        return _email_answer(True, domain.sent_message(template_id, to_email))


def _email_answer(success: bool, message: str, error: str | None = None) -> ToolAnswer:
    answer: ToolAnswer = {"success": success, "message": message}
    if error is not None:
        answer["error"] = error
    return answer


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 1:
        return int(min(value, 1000))
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 4 and int(value) >= 1:
        return int(value)
    return None
