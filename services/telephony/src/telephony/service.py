"""Use cases: one per telephony command, the post-call webhook, and reconciliation.

ElevenLabs has no idempotency keys, so every command that calls it runs through the
upstream-command ledger (`bus.ledger`, three steps), fenced (`bus.ownership`: a PostgreSQL lock
that ends when the worker dies or stays silent longer than `TELEPHONY_OWNER_TIMEOUT_S`). A second
delivery waits while the first handler lives, so recovery only starts once the earlier owner is
gone; a paused owner that wakes up finds it lost the command before it acts upstream, and its
outcome (the success event, `CommandFailed`, or `CallDialFailed` for PlaceCall) commits in the
owned transaction or not at all. An import whose answer is lost (timeout, 5xx:
`OutcomeUnknownError`) is recovered by the upstream lookup, never by a blind second POST.

PlaceCall never dials twice: a recovering delivery, or a dial whose outcome is unknown (timeout,
reset, 5xx), looks the conversation up (by the `switchboard_attempt_id` dynamic variable: a
PlaceCall is one dial attempt) after the settle time and adopts it; only "no conversation carries
this attempt" lets it dial, once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from bus import batch
from bus.errors import CommandError
from bus.ledger import CommandRunner, UpstreamCommand, caused_by, command_failed
from bus.ledger import Outcome as LedgerOutcome
from bus.logs import describe_error
from bus.secrets import Undecryptable, message_context
from contracts.base import Command, Event, utcnow
from contracts.telephony import (
    CallDialFailed,
    CallPlaced,
    CallStatusChanged,
    CustomerSessionDeleted,
    CustomerSessionStored,
    DeleteCustomerSession,
    DeletePhoneNumber,
    ImportSipTrunkNumber,
    ImportTwilioNumber,
    PhoneNumberDeleted,
    PhoneNumberImported,
    PhoneNumberRecord,
    PhoneNumberUpdated,
    PlaceCall,
    StoreCustomerSession,
    UpdatePhoneNumber,
)
from contracts.webhooks import PostCallWebhookReceived
from elevenlabs_client import ElevenLabsClient, OutcomeUnknownError, UpstreamError
from elevenlabs_client import dynamic_variables as variables
from telephony import domain, metrics
from telephony.agent_configs import AgentConfigs
from telephony.domain import JSON
from telephony.models import Call
from telephony.settings import Settings
from telephony.uow import UnitOfWork

log = structlog.get_logger("telephony.service")

# Conversations carry their start time; allow for clock skew between us and ElevenLabs.
_CALL_RECOVERY_SKEW_S = 60

Outcome = LedgerOutcome[UnitOfWork]


class UpstreamLookupFailed(Exception):
    """Recovery could not ask ElevenLabs; the bus retries the message (never a redial)."""


class TelephonyService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        elevenlabs: ElevenLabsClient,
        dialer: ElevenLabsClient,
        settings: Settings,
        *,
        commands: CommandRunner[UnitOfWork],
    ) -> None:
        self._uow = uow
        # Fenced (bus.ownership): a second delivery of a command waits while its owner lives.
        self._commands = commands
        self.elevenlabs = elevenlabs
        # Dials go through a client that never retries by itself: a retried POST after a timeout or
        # a 5xx could ring the same person twice. Only 429 (refused, nobody rang) is retried here.
        self._dialer = dialer
        self._settings = settings
        self._agents = AgentConfigs(elevenlabs, settings.agent_cache_ttl_s)

    def _decrypt(self, token: str, field: str) -> str:
        """Ciphertext of the command field `field` → secret, only right before it is sent to
        ElevenLabs. Never logged."""
        try:
            return self._settings.keyring.decrypt(token, context=message_context(field))
        except Undecryptable as exc:
            raise CommandError(422, "Invalid encrypted secret", "A secret could not be decrypted") from exc

    # ---- phone numbers -----------------------------------------------------------------------

    async def import_twilio_number(self, command: ImportTwilioNumber) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            body = domain.twilio_import_body(command, self._decrypt)
            return await self._import(command, upstream, body, "twilio", command.phone_number)

        await self._commands.run(command, action)

    async def import_sip_trunk_number(self, command: ImportSipTrunkNumber) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            body = domain.sip_import_body(command, self._decrypt)
            return await self._import(command, upstream, body, "sip_trunk", command.phone_number)

        await self._commands.run(command, action)

    async def _import(
        self, command: Command, upstream: UpstreamCommand, body: JSON, provider: str, phone_number: str
    ) -> Outcome:
        async def find() -> str | None:
            for phone in await self.elevenlabs.list_phone_numbers():
                if domain.same_number(phone, phone_number, provider):
                    log.info("telephony.phone_number.adopted", phone_number_id=phone["phone_number_id"])
                    return str(phone["phone_number_id"])
            return None

        phone_id = await find() if upstream.recovering else None
        if phone_id is None:
            try:  # a lost answer is recovered by the same lookup, never by a blind second import
                phone_id = await self.elevenlabs.create_once(
                    lambda: self.elevenlabs.create_phone_number(body), find, what="phone number"
                )
            except UpstreamError as exc:
                secrets = domain.secrets_in(body)
                raise UpstreamError(exc.status_code, exc.error, domain.redact(exc.detail, secrets)) from None
        record = domain.phone_record(
            await self.elevenlabs.get_phone_number(phone_id), int(upstream.started_at.timestamp())
        )
        event = caused_by(command, PhoneNumberImported, phone=record)
        return Outcome(
            event=event,
            key=record.phone_number_id,
            resource_id=record.phone_number_id,
            local=[_remember(record)],
        )

    async def update_phone_number(self, command: UpdatePhoneNumber) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            try:  # PATCH is idempotent: a retry simply applies it again
                phone = await self.elevenlabs.patch_phone_number(
                    command.phone_number_id, domain.phone_patch_body(command)
                )
            except UpstreamError as exc:
                if exc.status_code != 404:
                    raise
                raise _not_found(command.phone_number_id, exc) from exc
            async with self._uow() as uow:
                known = await uow.phone_numbers.get(command.phone_number_id)
                created_at = known.created_at_unix if known else int(upstream.started_at.timestamp())
            record = domain.phone_record(phone, created_at)
            event = caused_by(command, PhoneNumberUpdated, phone=record)
            return Outcome(
                event=event,
                key=record.phone_number_id,
                resource_id=record.phone_number_id,
                local=[_remember(record)],
            )

        await self._commands.run(command, action)

    async def delete_phone_number(self, command: DeletePhoneNumber) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            phone_id = command.phone_number_id
            try:
                await self.elevenlabs.delete_phone_number(phone_id)
            except UpstreamError as exc:
                if exc.status_code != 404:
                    raise
                # A 404 when recovering means the interrupted earlier delivery already deleted it.
                if not upstream.recovering:
                    raise _not_found(phone_id, exc) from exc

            async def forget(uow: UnitOfWork) -> None:
                await uow.phone_numbers.remove(phone_id)

            event = caused_by(command, PhoneNumberDeleted, phone_number_id=phone_id)
            return Outcome(event=event, key=phone_id, resource_id=phone_id, local=[forget])

        await self._commands.run(command, action)

    # ---- calls -------------------------------------------------------------------------------

    async def place_call(self, command: PlaceCall) -> None:
        def failure(exc: CommandError) -> Event:
            metrics.DIALS_FAILED.labels(str(exc.status_code)).inc()
            return caused_by(
                command,
                CallDialFailed,
                provider=command.provider,
                agent_id=command.agent_id,
                phone_number_id=command.agent_phone_number_id,
                to_number=command.to_number,
                status_code=exc.status_code,
                error=exc.error,
                detail=exc.detail,
                campaign_id=command.campaign_id,
                recipient_id=command.recipient_id,
                attempt=command.attempt,
                refusal=exc.refusal if isinstance(exc, domain.DialFailed) else None,
            )

        async def action(upstream: UpstreamCommand) -> Outcome:
            if upstream.recovering:
                # The earlier owner may have dialled before it died or was paused. Ask ElevenLabs
                # before anything else: a conversation tagged with this attempt means the call went
                # out, and it is adopted, never redialled.
                found = await self._settled_find(command, upstream, upstream.owner.acquired_at)
                if found is not None:
                    log.warning("telephony.call.adopted", conversation_id=found.conversation_id)
                    return self._placed(command, found)
                # No conversation carries this attempt: the dial never reached ElevenLabs, so
                # placing it now is its first and only dial (not a blind redial).
                log.warning("telephony.call.never_placed_dialling_now")
            await self._check_variables(command)
            dialled = await self._dial(command, upstream)
            return self._placed(command, dialled)

        await self._commands.run(command, action, failure)

    async def _check_variables(self, command: PlaceCall) -> None:
        """422 before anything rings when the agent needs variables the call does not give (else
        ElevenLabs fails the conversation after the phone rang)."""
        config = await self._agents.get(command.agent_id)
        missing = config.missing(command.dynamic_variables, command.first_message) if config else []
        if missing:
            raise domain.DialFailed(
                422, "Missing dynamic variables", variables.missing_message(missing), refusal="recipient"
            )

    async def _dial(self, command: PlaceCall, upstream: UpstreamCommand) -> domain.Dialled:
        """Place the call, or raise why nobody was called.

        429 is a refusal (nobody rang): retried after the backoff it asks for. A dial whose outcome
        is unknown (timeout, reset, 5xx) is never reported as a failure, which campaigns would retry
        as a new attempt: ElevenLabs is asked after the settle time, and only "no conversation
        carries this attempt" lets it be placed again, once.
        """
        body = domain.call_body(command)
        dial = (
            self._dialer.twilio_outbound_call
            if command.provider == "twilio"
            else self._dialer.sip_trunk_outbound_call
        )
        retries = 0
        unknown = 0
        while True:
            # A worker that was paused past its lease learns it here, before the POST leaves.
            await upstream.owner.ensure()
            try:
                response = await dial(body)
            except UpstreamError as exc:
                if exc.status_code == 429 and retries < self._settings.upstream_max_retries:
                    delay = self._backoff(retries, exc.detail)
                    log.info("telephony.call.rate_limited", retry_in_s=delay, retries=retries)
                    await asyncio.sleep(delay)  # rate-limit backoff
                    retries += 1
                    continue
                if not isinstance(exc, OutcomeUnknownError):
                    raise
                unknown += 1
                log.warning("telephony.call.outcome_unknown", status_code=exc.status_code, detail=exc.detail)
                found = await self._settled_find(command, upstream, time.monotonic())
                if found is not None:
                    log.warning("telephony.call.adopted", conversation_id=found.conversation_id)
                    return found
                if unknown > 1:
                    # Asked twice and twice proven absent: nobody was called, a definite failure.
                    raise UpstreamError(
                        502,
                        "Call could not be placed",
                        f"ElevenLabs did not answer the dial twice ({exc.detail}); no call was placed",
                    ) from exc
                log.warning("telephony.call.never_placed_dialling_again")
                continue
            return domain.dial_result(response)

    async def _settled_find(
        self, command: PlaceCall, upstream: UpstreamCommand, since: float
    ) -> domain.Dialled | None:
        """The attempt's conversation, asked now and, if absent, once more when a dial that may
        still be in flight had the settle time to show up, counted from `since` (monotonic): when
        we became the owner (the last moment an earlier owner could have sent one) or when our own
        dial failed."""
        found = await self._find_call(command, upstream)
        if found is not None:
            return found
        settle = self._settings.recovery_settle_s - (time.monotonic() - since)
        if settle > 0:
            await upstream.owner.ensure()
            await asyncio.sleep(settle)  # a dial in flight shows up upstream within the settle time
        return await self._find_call(command, upstream)

    def _backoff(self, retries: int, detail: str | None) -> float:
        s = self._settings
        computed = s.upstream_initial_backoff_s * 2.0**retries
        asked = domain.retry_after_from_detail(detail) or 0.0
        return min(max(computed, asked), s.upstream_max_backoff_s)

    async def _find_call(self, command: PlaceCall, upstream: UpstreamCommand) -> domain.Dialled | None:
        """The conversation an earlier delivery of this command created, if any.

        ElevenLabs failing to answer (after the client's own retries) is asked again, backing off
        and honouring Retry-After, until `TELEPHONY_LOOKUP_PATIENCE_S` after the command's first
        delivery (`upstream.started_at`): the person may have been called, and a few bus retries in
        quick succession would dead-letter the dial during a short outage, losing the call's record
        and its outcome. Counted from the first delivery, not per delivery: commands are handled
        one at a time, so each redelivery waiting the whole patience again would hold every other
        dial for BUS_MAX_ATTEMPTS times as long; a redelivery past it asks once."""
        waited = (utcnow() - upstream.started_at).total_seconds()
        deadline = time.monotonic() + max(0.0, self._settings.lookup_patience_s - waited)
        failures = 0
        while True:
            try:
                return await self._lookup_call(command, upstream.started_at)
            except UpstreamError as exc:
                left = deadline - time.monotonic()
                if left <= 0 or not (exc.status_code >= 500 or exc.status_code == 429):
                    raise UpstreamLookupFailed(str(exc)) from exc
                delay = min(self._backoff(failures, exc.detail), left)
                failures += 1
                log.warning(
                    "telephony.call.lookup_failed",
                    status_code=exc.status_code,
                    failures=failures,
                    retry_in_s=round(delay, 3),
                )
                await upstream.owner.ensure()
                await asyncio.sleep(delay)  # backoff while ElevenLabs cannot answer

    async def _lookup_call(self, command: PlaceCall, started_at: datetime) -> domain.Dialled | None:
        since = int(started_at.timestamp()) - _CALL_RECOVERY_SKEW_S
        candidates = await self.elevenlabs.list_conversations(
            agent_id=command.agent_id,
            user_id=domain.attempt_user_id(command.message_id),
            call_start_after_unix=since,
        )
        for summary in candidates:
            conversation = await self.elevenlabs.get_conversation(str(summary["conversation_id"]))
            if domain.attempt_id_of(conversation) == command.message_id:
                return domain.adopted(conversation)
        return None

    def _placed(self, command: PlaceCall, dialled: domain.Dialled) -> Outcome:
        placed_at = utcnow()
        conversation_id = dialled.conversation_id

        async def store(uow: UnitOfWork) -> None:
            await uow.calls.add_locked(
                conversation_id=conversation_id,
                attempt_id=command.message_id,
                provider=command.provider,
                agent_id=command.agent_id,
                phone_number_id=command.agent_phone_number_id,
                to_number=command.to_number,
                call_sid=dialled.call_sid,
                sip_call_id=dialled.sip_call_id,
                status="dialing",
                campaign_id=command.campaign_id,
                recipient_id=command.recipient_id,
                attempt=command.attempt,
                sender_email=command.sender_email,
                ecommerce_platform=command.ecommerce_platform,
                placed_at=placed_at,
                correlation_id=command.correlation_id,
            )
            if command.customer_info is not None:
                await uow.sessions.upsert(conversation_id, command.customer_info, command.sender_email)
            await self._apply_early_post_call(uow, conversation_id)

        event = caused_by(
            command,
            CallPlaced,
            conversation_id=conversation_id,
            provider=command.provider,
            call_sid=dialled.call_sid,
            sip_call_id=dialled.sip_call_id,
            agent_id=command.agent_id,
            phone_number_id=command.agent_phone_number_id,
            to_number=command.to_number,
            ecommerce_platform=command.ecommerce_platform,
            ecommerce_credentials_encrypted=command.ecommerce_credentials_encrypted,
            sender_email=command.sender_email,
            customer_info=command.customer_info,
            campaign_id=command.campaign_id,
            recipient_id=command.recipient_id,
            attempt=command.attempt,
            placed_at_unix=int(placed_at.timestamp()),
            quiet_hours_overridden=command.quiet_hours_overridden,
            dynamic_variables=command.dynamic_variables,
            calling_window=command.calling_window,
            time_zones=command.time_zones,
        )
        metrics.CALLS_PLACED.labels(command.provider).inc()
        extra: list[tuple[Event, str]] = []
        if command.customer_info is not None:
            stored = caused_by(
                command,
                CustomerSessionStored,
                conversation_id=conversation_id,
                customer_info=command.customer_info,
                sender_email=command.sender_email,
            )
            extra.append((stored, conversation_id))
        return Outcome(
            event=event, key=conversation_id, resource_id=conversation_id, local=[store], extra=extra
        )

    # ---- customer sessions -------------------------------------------------------------------

    async def store_customer_session(self, command: StoreCustomerSession) -> None:
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            existing = await uow.sessions.get(command.conversation_id)
            sender_email = existing.sender_email if existing else None
            await uow.sessions.upsert(command.conversation_id, command.customer_info, sender_email)
            event = caused_by(
                command,
                CustomerSessionStored,
                conversation_id=command.conversation_id,
                customer_info=command.customer_info,
                sender_email=sender_email,
            )
            await uow.publish(event, key=command.conversation_id)

    async def delete_customer_session(self, command: DeleteCustomerSession) -> None:
        async with self._uow() as uow:
            if not await uow.claim(command.message_id):
                return
            event: Event
            if await uow.sessions.remove(command.conversation_id):
                event = caused_by(command, CustomerSessionDeleted, conversation_id=command.conversation_id)
            else:
                event = command_failed(
                    command, CommandError(404, f"Session not found: {command.conversation_id}")
                )
            await uow.publish(event, key=command.conversation_id)

    # ---- call status -------------------------------------------------------------------------

    async def record_post_call(self, event: PostCallWebhookReceived) -> None:
        final = domain.status_from_webhook(event)
        async with self._uow() as uow:
            if not await uow.claim(event.message_id):
                return
            await uow.calls.lock(event.conversation_id)
            call = await uow.calls.get_for_update(event.conversation_id)
            if call is None:
                # The webhook can beat its call's commit: a call that fails at once, a slow or paused
                # worker between the dial's answer and its commit, a recovering PlaceCall waiting out
                # the settle time. Kept, and applied when the call is stored; dropping it left the
                # call (and a campaign's slot) waiting for reconciliation. Also kept: conversations
                # that are not ours (inbound calls), until reconciliation's give-up age.
                await uow.early_post_calls.keep(event, utcnow())
                log.info("telephony.post_call.before_its_call", conversation_id=event.conversation_id)
                return
            if domain.is_final(call.status):
                log.info(
                    "telephony.post_call.already_final",
                    conversation_id=call.conversation_id,
                    status=call.status,
                )
                return
            await self._apply(uow, call, final, "webhook", causation_id=event.message_id)

    async def _apply_early_post_call(self, uow: UnitOfWork, conversation_id: str) -> None:
        """Apply the post-call webhook that came before this call was stored (the earliest, if
        several: the first final status wins, as it does for webhooks that come after)."""
        early = await uow.early_post_calls.take(conversation_id)
        call = await uow.calls.get_for_update(conversation_id) if early else None
        if call is None or domain.is_final(call.status):
            return
        first = early[0]
        log.info("telephony.post_call.applied_when_stored", conversation_id=conversation_id)
        await self._apply(
            uow, call, domain.status_from_webhook(first), "webhook", causation_id=first.message_id
        )

    async def _apply(
        self,
        uow: UnitOfWork,
        call: Call,
        final: domain.FinalStatus,
        source: str,
        *,
        causation_id: str | None,
    ) -> None:
        """Move `call` to its final status and emit `CallStatusChanged` in the same transaction."""
        ended_at = utcnow()
        await uow.calls.set_status(
            call.conversation_id,
            status=final.status,
            ended_at=ended_at,
            duration_seconds=final.duration_seconds,
            outcome=final.outcome,
            summary=final.summary,
            reason=final.reason,
            status_source=source,
        )
        changed = CallStatusChanged(
            correlation_id=call.correlation_id,
            causation_id=causation_id,
            conversation_id=call.conversation_id,
            status=final.status,
            duration_seconds=final.duration_seconds,
            outcome=final.outcome,
            summary=final.summary,
            reason=final.reason,
            source=source,
            campaign_id=call.campaign_id,
            recipient_id=call.recipient_id,
            attempt=call.attempt,
            refusal=final.refusal,
            to_number=call.to_number,
            agent_id=call.agent_id,
            phone_number_id=call.phone_number_id,
            started_at_unix=int(call.placed_at.timestamp()),
            ended_at_unix=int(ended_at.timestamp()),
            data_collection=dict(final.data_collection),
        )
        await uow.publish(changed, key=call.conversation_id)
        # Counted once the batch of webhooks commits: a rolled-back batch is handled again.
        batch.after_commit(metrics.CALLS_ENDED.labels(final.status, source).inc)
        log.info(
            "telephony.call.status_changed",
            conversation_id=call.conversation_id,
            status=final.status,
            source=source,
        )

    async def reconcile_once(self) -> int:
        """Finish calls whose webhook never came; returns how many changed status.

        Rows are locked with SKIP LOCKED for the duration, so replicas never work on the same call
        and a concurrent webhook for it waits, then sees the status is already final.
        """
        s = self._settings
        now = utcnow()
        changed = 0
        async with self._uow() as uow:
            forgotten = await uow.early_post_calls.forget_received_before(
                now - timedelta(seconds=s.reconcile_give_up_s)
            )
            if forgotten:
                log.info("telephony.post_call.early_forgotten", count=forgotten)
            due = await uow.calls.due_for_reconciliation(
                now - timedelta(seconds=s.reconcile_after_s), s.reconcile_batch_size
            )
            for call in due:
                try:
                    conversation: JSON | None = await self.elevenlabs.get_conversation(call.conversation_id)
                except UpstreamError as exc:
                    log.warning(
                        "telephony.reconcile.lookup_failed",
                        conversation_id=call.conversation_id,
                        status_code=exc.status_code,
                    )
                    if exc.status_code != 404:
                        continue
                    conversation = None
                age_s = (now - call.placed_at).total_seconds()
                final = domain.reconcile_decision(conversation, age_s, s.reconcile_give_up_s)
                if final is None:
                    continue
                await self._apply(uow, call, final, "reconciliation", causation_id=None)
                changed += 1
        return changed

    async def reconcile_forever(self) -> None:
        """The background loop started by the app lifespan; cancelled on shutdown."""
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("telephony.reconcile.failed", error=describe_error(exc))
            await asyncio.sleep(self._settings.reconcile_interval_s)  # the reconciliation period


def _remember(record: PhoneNumberRecord) -> Callable[[UnitOfWork], Awaitable[None]]:
    async def write(uow: UnitOfWork) -> None:
        await uow.phone_numbers.upsert(record)

    return write


def _not_found(phone_number_id: str, exc: UpstreamError) -> CommandError:
    return CommandError(404, f"Phone number not found: {phone_number_id}", exc.detail)
