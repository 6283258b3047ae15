"""The one use case: send the e-mail a SendEmail command asks for, at most once.

Three steps, like telephony's upstream calls:
1. a short transaction records a `sending` delivery keyed by the command's message_id and commits
   it *before* the mail server is contacted (a redelivery finding `sent`/`failed` does nothing; one
   finding `sending` means an earlier delivery crashed mid-send with the outcome unknown: it is
   *not* sent again but reported failed, since a duplicate e-mail is worse than a missing one);
2. the send, outside any transaction, with in-process retries of transient failures;
3. one transaction: inbox claim, delivery `sent`/`failed`, and exactly one outcome event
   (`email.sent` or `email.failed`, keyed by conversation_id) written to the outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter

from bus.logs import describe_error
from contracts.base import Event, utcnow
from contracts.notifier import EmailFailed, EmailSent, SendEmail
from notifier import domain
from notifier.domain import EmailError
from notifier.models import DeliveryStatus
from notifier.settings import Settings
from notifier.transports import Transport
from notifier.uow import UnitOfWork

log = structlog.get_logger("notifier.service")

EMAILS_SENT = Counter("switchboard_emails_sent_total", "E-mails accepted by the mail server or e-mail API.")
EMAILS_FAILED = Counter(
    "switchboard_emails_failed_total",
    "E-mails given up on; permanent=false after transient failures exhausted the attempts.",
    ["permanent"],
)

# Step 3 is retried in-process: once an e-mail went out, failing here would make a redelivery
# find the delivery `sending` and report a sent e-mail as failed.
_FINISH_ATTEMPTS = 5


@dataclass(frozen=True)
class Result:
    event: Event
    status: str
    attempts: int | None
    error: str | None
    transport: str | None


class NotifierService:
    def __init__(self, uow: Callable[[], UnitOfWork], transport: Transport, settings: Settings) -> None:
        self._uow = uow
        self.transport = transport
        self._settings = settings

    async def send_email(self, command: SendEmail) -> None:
        async with self._uow() as uow:
            row, created = await uow.deliveries.start(command)
            status = row.status
        if status != DeliveryStatus.SENDING:
            log.info("notifier.email.redelivered", status=status)
            return
        if not created:
            log.warning("notifier.email.outcome_unknown", started_at=row.started_at.isoformat())
            result = self._failed(command, domain.UNKNOWN_AFTER_RESTART, permanent=True, attempts=None)
        else:
            result = await self._deliver(command)
        await self._finish(command, result)

    async def _deliver(self, command: SendEmail) -> Result:
        try:
            outgoing = domain.build_email(command, self._settings.default_sender_email)
        except EmailError as exc:
            log.info("notifier.email.invalid", error=exc.error)
            return self._failed(command, exc.error, permanent=True, attempts=0)
        s = self._settings
        for attempt in range(1, s.max_attempts + 1):
            try:
                await self.transport.send(outgoing)
            except EmailError as exc:
                error = domain.redact(exc.error, s.secrets())
                if exc.permanent or attempt == s.max_attempts:
                    log.info("notifier.email.failed", attempt=attempt, permanent=exc.permanent, error=error)
                    return self._failed(command, error, permanent=exc.permanent, attempts=attempt)
                delay = domain.backoff_delay(attempt, s.backoff_s, s.max_backoff_s, exc.retry_after_s)
                log.warning("notifier.email.retry", attempt=attempt, delay_s=delay, error=error)
                await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
            else:
                event = EmailSent(
                    correlation_id=command.correlation_id,
                    causation_id=command.message_id,
                    conversation_id=command.conversation_id,
                    template_id=command.template_id,
                    to_email=outgoing.to_email,
                    from_email=outgoing.from_email,
                    subject=outgoing.subject,
                    transport=self.transport.name,
                    sent_at_unix=int(utcnow().timestamp()),
                )
                return Result(event, DeliveryStatus.SENT, attempt, None, self.transport.name)
        raise AssertionError("unreachable: max_attempts >= 1")

    def _failed(self, command: SendEmail, error: str, *, permanent: bool, attempts: int | None) -> Result:
        event = EmailFailed(
            correlation_id=command.correlation_id,
            causation_id=command.message_id,
            conversation_id=command.conversation_id,
            template_id=command.template_id,
            to_email=command.to_email,
            subject=command.subject,
            error=error,
            permanent=permanent,
            failed_at_unix=int(utcnow().timestamp()),
        )
        transport = self.transport.name if attempts else None
        return Result(event, DeliveryStatus.FAILED, attempts, error, transport)

    async def _finish(self, command: SendEmail, result: Result) -> None:
        for attempt in range(1, _FINISH_ATTEMPTS + 1):
            try:
                async with self._uow() as uow:
                    if not await uow.claim(command.message_id):
                        return
                    await uow.deliveries.finish(
                        command.message_id,
                        status=result.status,
                        attempts=result.attempts,
                        last_error=result.error,
                        transport=result.transport,
                        at=utcnow(),
                    )
                    await uow.publish(result.event, key=command.conversation_id)
                break
            except Exception as exc:
                if attempt == _FINISH_ATTEMPTS:
                    raise
                log.warning("notifier.email.record_retry", attempt=attempt, error=describe_error(exc))
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))  # backoff, not synchronisation
        if isinstance(result.event, EmailFailed):
            EMAILS_FAILED.labels(permanent=str(result.event.permanent).lower()).inc()
        else:
            EMAILS_SENT.inc()
        log.info("notifier.email.done", outcome=result.event.type, status=result.status)
