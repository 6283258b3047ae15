"""Use cases of the tool-webhooks service. Services never commit: the unit of work does.

- `receive_post_call`: verify the signature on the raw bytes, then in ONE transaction claim the
  webhook's deterministic message id in the inbox and write `PostCallWebhookReceived` to the outbox.
- `register_post_call_webhook`: create the workspace webhook upstream, point the ConvAI settings at
  it, store its secret encrypted and emit `PostCallWebhookRegistered` (or `CommandFailed`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

from bus.context import current_correlation_id
from contracts.base import CommandFailed
from contracts.webhooks import PostCallWebhookRegistered, RegisterPostCallWebhook
from elevenlabs_client import ElevenLabsClient, UpstreamError
from tool_webhooks import domain
from tool_webhooks.domain import CommandError
from tool_webhooks.models import POST_CALL_CONSUMER
from tool_webhooks.settings import Settings
from tool_webhooks.uow import UnitOfWork

log = structlog.get_logger("tool_webhooks.service")

ReceiveOutcome = Literal["accepted", "duplicate", "ignored"]


@dataclass(frozen=True)
class Registration:
    webhook_id: str
    webhook_url: str


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
            clear = domain.decrypt_secret(
                self._settings.switchboard_secret_key.get_secret_value(), latest.secret_encrypted
            )
            if clear is None:
                log.warning("tool_webhooks.secret.undecryptable", webhook_id=latest.webhook_id)
            else:
                secrets.append(clear)
        return secrets

    async def receive_post_call(self, body: bytes, signature: str | None) -> ReceiveOutcome:
        """Raises `InvalidSignature` (nothing written) or `MalformedPayload` (signed but unreadable)."""
        async with self._uow() as uow:
            domain.verify_signature(
                signature,
                body,
                await self._secrets(uow),
                now=self._clock(),
                tolerance_past_s=self._settings.webhook_tolerance_past_s,
                tolerance_future_s=self._settings.webhook_tolerance_future_s,
            )
            envelope = domain.parse_envelope(body)
            if envelope.type not in domain.PUBLISHED_TYPES:
                log.info("tool_webhooks.post_call.ignored", webhook_type=envelope.type)
                return "ignored"
            event = domain.received_event(envelope, correlation_id=current_correlation_id())
            # Never log the body: transcripts are personal data.
            bound = log.bind(webhook_type=envelope.type, conversation_id=event.conversation_id)
            if not await uow.claim(event.message_id, POST_CALL_CONSUMER):
                bound.info("tool_webhooks.post_call.duplicate")
                return "duplicate"
            await uow.publish(event, key=event.conversation_id)
            bound.info("tool_webhooks.post_call.accepted", message_id=event.message_id)
            return "accepted"

    # ---- registration ------------------------------------------------------------------------

    async def register_post_call_webhook(
        self, public_url: str, *, command: RegisterPostCallWebhook | None = None
    ) -> Registration:
        """Register upstream and record it; raises `CommandError` / `UpstreamError` on failure.

        With `command`, the inbox claim happens in the recording transaction; a command already
        handled by a concurrent delivery records nothing more (its registration stands).
        """
        secret_key = self._settings.switchboard_secret_key.get_secret_value()
        domain.fernet(secret_key)  # fail before touching ElevenLabs when the key is missing
        webhook_url = domain.post_call_webhook_url(public_url)
        created = await self.elevenlabs.create_workspace_webhook(domain.WEBHOOK_NAME, webhook_url)
        webhook_id, secret = created.get("webhook_id"), created.get("webhook_secret")
        if not isinstance(webhook_id, str) or not isinstance(secret, str) or not secret:
            raise CommandError(502, "ElevenLabs unavailable", "Webhook created without id or secret")
        await self.elevenlabs.update_convai_settings(domain.convai_webhook_settings(webhook_id))
        async with self._uow() as uow:
            if command is not None and not await uow.claim(command.message_id):
                return Registration(webhook_id, webhook_url)
            await uow.registrations.add(
                webhook_id,
                webhook_url,
                domain.encrypt_secret(secret_key, secret),
                command.message_id if command else None,
            )
            await uow.publish(
                PostCallWebhookRegistered(
                    webhook_id=webhook_id,
                    webhook_url=webhook_url,
                    correlation_id=command.correlation_id if command else current_correlation_id(),
                    causation_id=command.message_id if command else None,
                ),
                key=webhook_id,
            )
        log.info("tool_webhooks.webhook.registered", webhook_id=webhook_id, webhook_url=webhook_url)
        return Registration(webhook_id, webhook_url)

    async def handle_register_command(self, command: RegisterPostCallWebhook) -> None:
        """`RegisterPostCallWebhook` from the bus: exactly one outcome event per command."""
        async with self._uow() as uow:
            if await uow.inbox.seen(command.message_id):
                return
        try:
            await self.register_post_call_webhook(command.public_url, command=command)
        except (UpstreamError, CommandError) as exc:
            log.warning("tool_webhooks.webhook.register_failed", status=exc.status_code, error=exc.error)
            async with self._uow() as uow:
                if not await uow.claim(command.message_id):
                    return
                await uow.publish(
                    CommandFailed(
                        command_type=command.type,
                        status_code=exc.status_code,
                        error=exc.error,
                        detail=exc.detail,
                        correlation_id=command.correlation_id,
                        causation_id=command.message_id,
                    ),
                    key=None,
                )
