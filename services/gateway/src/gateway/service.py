"""What every gateway use case builds on: writes become commands answered from their outcome
(`execute`), reads come from the read models (typed by model), and the projection keeps those read
models up to date from events. The use cases live per resource: `gateway.agents`, `calls`, `batch`,
`batch_jobs`, `knowledge_base`, `phone_numbers`, `email_templates`, `sessions`, `webhooks`; API keys
in `gateway.auth`, retention in `gateway.retention`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import structlog

from bus.context import current_correlation_id
from bus.limits import is_too_large
from contracts import topics
from contracts.base import Command, Event
from contracts.campaigns import (
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignSnapshot,
    CampaignUpdated,
    DoNotCallAdded,
    DoNotCallRemoved,
)
from contracts.notifier import (
    EmailFailed,
    EmailSent,
    WebhookDeliveryUpdated,
    WebhookSubscriptionDeleted,
    WebhookSubscriptionUpdated,
)
from contracts.provisioning import (
    AgentCreated,
    AgentDeleted,
    AgentUpdated,
    EcommerceToolsCreated,
    EmailTemplateCreated,
    EmailTemplateDeleted,
    EmailTemplateRecord,
    KnowledgeDocumentCreated,
    KnowledgeDocumentDeleted,
    ToolCreated,
    ToolDeleted,
    ToolTokenRotated,
)
from contracts.telephony import (
    FINAL_CALL_STATUSES,
    CallPlaced,
    CallStatusChanged,
    CustomerInfo,
    CustomerSessionDeleted,
    CustomerSessionStored,
    PhoneNumberDeleted,
    PhoneNumberImported,
    PhoneNumberRecord,
    PhoneNumberUpdated,
)
from contracts.webhooks import PostCallTranscriptPart, PostCallWebhookReceived
from gateway import domain, views
from gateway.domain import Outcome
from gateway.errors import NotFound
from gateway.idempotency import command_id_for_request
from gateway.models import (
    Agent,
    Call,
    CallAnalysis,
    Campaign,
    CampaignChange,
    CampaignRecipient,
    CustomerSession,
    DoNotCall,
    Email,
    EmailTemplate,
    KnowledgeDocument,
    PhoneNumber,
    Tool,
    Webhook,
    WebhookDelivery,
    WebhookDeliveryAttempt,
)
from gateway.repository import R, RecipientResult
from gateway.settings import Settings
from gateway.uow import UnitOfWork
from gateway.waiter import OperationWaiter

PROJECTION = "gateway.projection"

log = structlog.get_logger("gateway")


class Accepted(Outcome):
    """The deadline passed before the outcome: the caller polls the operation."""


class GatewayService:
    def __init__(self, settings: Settings, uow: Callable[[], UnitOfWork], waiter: OperationWaiter) -> None:
        self.settings = settings
        self.uow = uow
        self.waiter = waiter

    # ---- writes ------------------------------------------------------------------------------

    async def execute(
        self,
        command: Command,
        *,
        key: str | None = None,
        topic: str = topics.PROVISIONING_COMMANDS,
        followers: Sequence[Command] = (),
        stage: Callable[[UnitOfWork, Command], Awaitable[Command | None]] | None = None,
    ) -> Outcome:
        """Publish `command` (with its pending operation, atomically) and answer with its outcome.

        Under an Idempotency-Key the command id is derived from the key, so a retry after a crash
        finds the same operation and never publishes a second, different command. `followers` are
        published after it in the same transaction (e.g. a campaign's further recipient chunks);
        `stage(uow, command)` writes whatever else must commit with the command (it may publish
        followers itself, caused by `command`: `update_for_follower`) and may return the command's
        final version (same id), which replaces it in the outbox, still ahead of its followers.
        Nothing is written when `stage` raises.
        """
        update: dict[str, Any] = {"correlation_id": current_correlation_id()}
        if (derived := command_id_for_request.get()) is not None:
            update["message_id"] = derived
        command = command.model_copy(update=update)
        op_id = command.message_id
        self.waiter.register(op_id)
        try:
            async with self.uow() as uow:
                if await uow.operations.add_pending_once(op_id, command.type):
                    queued = await uow.publish(command, key or op_id, topic=topic)
                    for follower in followers:
                        await uow.publish(
                            follower.model_copy(update=update_for_follower(command)), key, topic=topic
                        )
                    if stage is not None and (final := await stage(uow, command)) is not None:
                        final = final.model_copy(update=update | {"message_id": op_id})
                        await uow.replace_queued(queued, final, key or op_id, topic=topic)
            deadline = time.monotonic() + self.settings.reply_timeout_s
            while True:
                remaining = deadline - time.monotonic()
                await self.waiter.wait(op_id, max(0.0, min(self.waiter.poll_interval, remaining)))
                outcome = await self.operation_outcome(op_id)
                if outcome is not None:
                    return outcome
                if time.monotonic() >= deadline:
                    return self._accepted(op_id)
        finally:
            self.waiter.forget(op_id)

    def _accepted(self, op_id: str) -> Outcome:
        return Accepted(
            202,
            {
                "success": True,
                "message": "Accepted; the operation is still running",
                "operation_id": op_id,
                "status": "pending",
                "status_url": f"/api/v1/operations/{op_id}",
            },
        )

    async def operation_outcome(self, op_id: str) -> Outcome | None:
        async with self.uow() as uow:
            op = await uow.operations.get(op_id)
        if op is None or op.status == "pending" or op.status_code is None or op.response is None:
            return None
        return Outcome(op.status_code, op.response)

    async def operation(self, op_id: str) -> dict[str, Any]:
        async with self.uow() as uow:
            op = await uow.operations.get(op_id)
            if op is None:
                raise NotFound(f"Operation not found: {op_id}")
            return {
                "operation_id": op.operation_id,
                "type": op.command_type,
                "status": op.status,
                "status_code": op.status_code,
                "result": op.response,
            }

    # ---- reads -------------------------------------------------------------------------------

    async def get(self, model: type[R], resource_id: str, not_found: str) -> R:
        """The live row of `model` with this id; NotFound (404, `not_found: id`) when there is none."""
        async with self.uow() as uow:
            row = await uow.read_models.get(model, resource_id)
        if row is None:
            raise NotFound(f"{not_found}: {resource_id}")
        return row

    async def transcript(self, conversation_id: str) -> list[dict[str, Any]] | None:
        """The call's turns `[{role, message, time_in_call_secs}]` once all parts arrived, else None."""
        async with self.uow() as uow:
            text = await uow.transcripts.text(conversation_id)
        if text is None:
            return None
        # Off the event loop: a transcript can be megabytes.
        turns: list[dict[str, Any]] = await asyncio.to_thread(json.loads, text)
        return turns

    async def page(
        self, model: type[R], cursor: str | None, page_size: int, filters: dict[str, Any] | None = None
    ) -> tuple[list[R], str | None]:
        """A page of `model`'s live rows, newest first (`ReadModels.page`), and the next page's cursor."""
        after = domain.decode_cursor(cursor)
        async with self.uow() as uow:
            rows, has_more = await uow.read_models.page(
                model, after_position=after, page_size=page_size, filters=filters
            )
        return rows, domain.encode_cursor(rows[-1].position) if has_more and rows else None

    async def find(self, model: type[R], resource_id: str) -> R | None:
        async with self.uow() as uow:
            return await uow.read_models.get(model, resource_id)

    async def exists(self, model: type[R], resource_id: str) -> bool:
        return await self.find(model, resource_id) is not None

    async def results_page(
        self,
        campaign_id: str,
        cursor: str | None,
        page_size: int,
        status: str | None,
        outcome: str | None,
        search: str | None = None,
        recipient_id: str | None = None,
    ) -> tuple[list[RecipientResult], str | None]:
        """A page of a campaign's per-recipient results (`Results.page`) and the next page's cursor."""
        after = domain.decode_cursor(cursor)
        async with self.uow() as uow:
            rows, has_more = await uow.results.page(
                campaign_id,
                after_position=after,
                page_size=page_size,
                status=status,
                outcome=outcome,
                search=search,
                recipient_id=recipient_id,
            )
        next_cursor = rows[-1].recipient.position if has_more and rows else None
        return rows, domain.encode_cursor(next_cursor) if next_cursor is not None else None

    async def all_results(
        self, campaign_id: str, status: str | None, outcome: str | None, page_size: int = 1000
    ) -> AsyncIterator[list[RecipientResult]]:
        """Every recipient's results, a page at a time, each page read in a short transaction of its
        own (no transaction or connection held while the client reads)."""
        after: int | None = None
        while True:
            async with self.uow() as uow:
                rows, has_more = await uow.results.page(
                    campaign_id, after_position=after, page_size=page_size, status=status, outcome=outcome
                )
            if rows:
                yield rows
            if not has_more or not rows:
                return
            after = rows[-1].recipient.position

    async def changes_after(
        self, change_id: int, campaign_id: str | None, limit: int = 500
    ) -> list[CampaignChange]:
        """The campaign changes after `change_id` (of one campaign, or all), oldest first."""
        async with self.uow() as uow:
            return await uow.changes.after(change_id, campaign_id, limit)

    async def last_change_id(self) -> int:
        async with self.uow() as uow:
            return await uow.changes.last_id()

    async def status_counts(self, campaign_id: str) -> dict[str, int]:
        """{recipient status: count} of one campaign (`Results.status_counts`)."""
        async with self.uow() as uow:
            return await uow.results.status_counts(campaign_id)

    async def result_columns(self, campaign_id: str) -> tuple[list[str], list[str]]:
        """(data collection ids, dynamic variable names) of a campaign's export, each sorted."""
        async with self.uow() as uow:
            return (
                await uow.results.data_collection_keys(campaign_id),
                await uow.results.dynamic_variable_keys(campaign_id),
            )

    async def analysis(self, conversation_id: str) -> CallAnalysis | None:
        async with self.uow() as uow:
            return await uow.analyses.get(conversation_id)

    async def webhook_deliveries(
        self, webhook_id: str, cursor: str | None, page_size: int, status: str | None
    ) -> tuple[list[tuple[WebhookDelivery, list[WebhookDeliveryAttempt]]], str | None]:
        """A webhook's deliveries, newest first, each with every attempt."""
        after = domain.decode_cursor(cursor)
        async with self.uow() as uow:
            rows, has_more = await uow.webhook_deliveries.page(
                webhook_id, after_position=after, page_size=page_size, status=status
            )
            attempts = await uow.webhook_deliveries.attempts([r.delivery_id for r in rows])
        next_cursor = domain.encode_cursor(rows[-1].position) if has_more and rows else None
        return [(r, attempts[r.delivery_id]) for r in rows], next_cursor

    async def webhook_delivery(self, delivery_id: str) -> WebhookDelivery | None:
        async with self.uow() as uow:
            return await uow.webhook_deliveries.get(delivery_id)

    async def missing_ids(self, model: type[R], ids: list[str]) -> list[str]:
        if not ids:
            return []
        async with self.uow() as uow:
            found = await uow.read_models.existing_ids(model, ids)
        return [i for i in ids if i not in found]

    # ---- projection --------------------------------------------------------------------------

    async def project(self, event: Event) -> None:
        """Apply a provisioning event to the read models and complete its operation, once."""
        async with self.uow() as uow:
            if not await uow.claim(event.message_id, PROJECTION):
                return
            at = event.occurred_at
            rm = uow.read_models
            # What the live progress streams see, appended last (`Changes.append`).
            changes: list[tuple[str, str, dict[str, Any]]] = []
            match event:
                case ToolCreated(tool=t):
                    await rm.upsert(Tool, _tool_row(t), at)
                case EcommerceToolsCreated(products_tool=p, orders_tool=o):
                    await rm.upsert(Tool, _tool_row(p), at)
                    await rm.upsert(Tool, _tool_row(o), at)
                case ToolDeleted(tool_id=tool_id):
                    await rm.tombstone(Tool, tool_id, at)
                case ToolTokenRotated(tool_id=tool_id, tool_config=config):
                    await rm.update_if_newer(Tool, tool_id, {"tool_config": config}, at)
                case KnowledgeDocumentCreated(document=d):
                    await rm.upsert(
                        KnowledgeDocument,
                        {
                            "document_id": d.document_id,
                            "name": d.name,
                            "source_type": d.source_type,
                            "type": d.type,
                            "status": "ready",
                            "folder_path": d.folder_path,
                            "created_at_unix": d.created_at_unix,
                        },
                        at,
                    )
                case KnowledgeDocumentDeleted(document_id=doc_id):
                    await rm.tombstone(KnowledgeDocument, doc_id, at)
                case AgentCreated(agent=a) | AgentUpdated(agent=a):
                    await rm.upsert(
                        Agent,
                        {
                            "agent_id": a.agent_id,
                            "name": a.name,
                            "conversation_config": a.conversation_config,
                            "platform_settings": a.platform_settings,
                            "tags": a.tags,
                            "created_at_unix": a.created_at_unix,
                        },
                        at,
                    )
                case AgentDeleted(agent_id=agent_id):
                    await rm.tombstone(Agent, agent_id, at)
                case PhoneNumberImported(phone=p) | PhoneNumberUpdated(phone=p):
                    await rm.upsert(PhoneNumber, _phone_row(p), at)
                case PhoneNumberDeleted(phone_number_id=pid):
                    await rm.tombstone(PhoneNumber, pid, at)
                case CallPlaced() as call:
                    await rm.upsert(Call, _call_row(call), at)
                    if call.customer_info is not None:
                        # The call's answer must find its session (read-your-writes); the session's
                        # own event comes after this one has completed the operation.
                        await rm.upsert(
                            CustomerSession, _session_row(call.conversation_id, call.customer_info, at), at
                        )
                case PostCallTranscriptPart() as part:
                    await uow.transcripts.add_part(
                        part.conversation_id,
                        part.part_index,
                        part.part_count,
                        part.turn_count,
                        part.transcript_json,
                    )
                case PostCallWebhookReceived(webhook_type="post_call_transcription") as hook:
                    await uow.analyses.add(
                        {
                            "conversation_id": hook.conversation_id,
                            "call_successful": hook.call_successful,
                            "transcript_summary": hook.transcript_summary,
                            "data_collection_results": hook.data_collection,
                            "evaluation_criteria_results": hook.evaluation_criteria,
                            "termination_reason": hook.termination_reason,
                            "event_timestamp": hook.event_timestamp,
                        }
                    )
                case CallStatusChanged() as change:
                    await rm.update_if_newer(
                        Call,
                        change.conversation_id,
                        {
                            "status": change.status,
                            "duration_seconds": change.duration_seconds,
                            "outcome": change.outcome,
                            "summary": change.summary,
                            "reason": change.reason,
                            "ended_at_unix": int(at.timestamp())
                            if change.status in FINAL_CALL_STATUSES
                            else None,
                        },
                        at,
                    )
                case CustomerSessionStored(conversation_id=cid, customer_info=info):
                    await rm.upsert(CustomerSession, _session_row(cid, info, at), at)
                case CustomerSessionDeleted(conversation_id=cid):
                    await rm.tombstone(CustomerSession, cid, at)
                case EmailTemplateCreated(template=t, tool=tool):
                    await rm.upsert(EmailTemplate, _template_row(t), at)
                    await rm.upsert(Tool, _tool_row(tool), at)
                case EmailTemplateDeleted(template_id=tid, tool_id=tool_id):
                    await rm.tombstone(EmailTemplate, tid, at)
                    if tool_id:
                        await rm.tombstone(Tool, tool_id, at)
                case EmailSent() | EmailFailed() as mail:
                    await rm.upsert(Email, _email_row(mail, at), at)
                case CampaignUpdated(campaign=c):
                    if await rm.upsert(Campaign, _campaign_row(c), at):
                        changes.append((c.campaign_id, "campaign", views.job_progress_view(c)))
                case CampaignRecipientsStaged(campaign_id=cid, recipients=staged):
                    # The state only: the as-submitted name, e-mail and variables stay as staged.
                    await uow.recipients.upsert_many(
                        cid,
                        [
                            {
                                "recipient_id": r.recipient_id,
                                "position": r.position,
                                "to_number": r.to_number,
                                "status": r.status,
                                "time_zones": r.time_zones,
                                "reason": r.reason,
                            }
                            for r in staged
                        ],
                        at,
                    )
                case CampaignRecipientsClosed(campaign_id=cid, status=status, reason=reason) as closed:
                    written = await uow.recipients.upsert_many(
                        cid,
                        [
                            {
                                "recipient_id": r.recipient_id,
                                "position": r.position,
                                "to_number": r.to_number,
                                "status": status,
                                "reason": reason,
                                "retry_count": r.retry_count,
                                "conversation_id": r.conversation_id,
                                "duration_seconds": r.duration_seconds,
                                "outcome": r.outcome,
                                "time_zones": r.time_zones,
                                "waiting_reason": None,
                                "next_attempt_at_unix": None,
                            }
                            for r in closed.recipients
                        ],
                        at,
                    )
                    changes += [(cid, "recipient", _recipient_change(row)) for row in written]
                case CampaignRecipientUpdated() as r:
                    if await uow.recipients.upsert(
                        {
                            "campaign_id": r.campaign_id,
                            "recipient_id": r.recipient_id,
                            "position": r.position,
                            "to_number": r.to_number,
                            "status": r.status,
                            "conversation_id": r.conversation_id,
                            "duration_seconds": r.duration_seconds,
                            "outcome": r.outcome,
                            "retry_count": r.retry_count,
                            "time_zones": r.time_zones,
                            "reason": r.reason,
                            "waiting_reason": r.waiting_reason,
                            "next_attempt_at_unix": r.next_attempt_at_unix,
                            "callback_at_unix": r.callback_at_unix,
                            "callback_requested": r.callback_requested,
                        },
                        at,
                    ):
                        changes.append((r.campaign_id, "recipient", _recipient_change(r)))
                case DoNotCallAdded(phone_number=number, reason=reason, added_at_unix=added) as listed:
                    await rm.upsert(
                        DoNotCall,
                        {
                            "phone_number": number,
                            "reason": reason,
                            "added_at_unix": added,
                            "source": listed.source,
                            "conversation_id": listed.conversation_id,
                        },
                        at,
                    )
                case DoNotCallRemoved(phone_number=number):
                    await rm.tombstone(DoNotCall, number, at)
                case WebhookSubscriptionUpdated(subscription=sub):
                    row = views.webhook_view(sub)
                    await rm.upsert(Webhook, row, at)
                case WebhookSubscriptionDeleted(subscription_id=sid):
                    await rm.tombstone(Webhook, sid, at)
                case WebhookDeliveryUpdated() as d:
                    view = views.delivery_view(d)
                    await uow.webhook_deliveries.upsert(view, at)
                    if d.last_attempt is not None:
                        await uow.webhook_deliveries.add_attempt(
                            {"delivery_id": d.delivery_id, **d.last_attempt.model_dump()}
                        )
            if event.causation_id:
                command_type = await uow.operations.pending_type(event.causation_id)
                if command_type is not None and domain.concludes(event.type, command_type):
                    outcome = domain.outcome_of(event, command_type)
                    await uow.operations.complete(event.causation_id, outcome.status_code, outcome.body)
            if changes:
                await uow.changes.append(changes)

    async def relay_failed(self, topic: str, headers: dict[str, str], exc: BaseException) -> None:
        """A command the outbox relay can never publish: fail its operation (or its leading command's).

        `headers` are the message's bus headers (`message_id`, `causation_id` for a follower such as
        a campaign's further recipient chunk). Anything else the relay drops has no operation.
        """
        too_large = is_too_large(exc)
        async with self.uow() as uow:
            for op_id in filter(None, (headers.get("message_id"), headers.get("causation_id"))):
                command_type = await uow.operations.pending_type(op_id)
                if command_type is None:
                    continue
                error = "Payload too large" if too_large else "Internal server error"
                await uow.operations.complete(
                    op_id,
                    413 if too_large else 500,
                    {
                        "success": False,
                        "error": error,
                        "detail": f"The {command_type} command could not be delivered to its service: "
                        + (
                            "it is over the message broker's size limit"
                            if too_large
                            else f"the message broker refused it ({type(exc).__name__})"
                        ),
                    },
                )
                return

    async def command_dead_lettered(self, command: Command) -> None:
        """A command its service could not handle at all: fail its operation instead of leaving it pending."""
        async with self.uow() as uow:
            if not await uow.claim(command.message_id, f"{PROJECTION}.dlq"):
                return
            await uow.operations.complete(
                command.message_id,
                500,
                {
                    "success": False,
                    "error": "Internal server error",
                    "detail": f"The {command.type} command could not be processed",
                },
            )


def update_for_follower(command: Command) -> dict[str, Any]:
    """Followers share the leading command's correlation and are caused by it."""
    return {"correlation_id": command.correlation_id, "causation_id": command.message_id}


def _session_row(conversation_id: str, info: CustomerInfo, at: datetime) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "name": info.name,
        "email": info.email,
        "phone": info.phone,
        "created_at_unix": int(at.timestamp()),
    }


def _template_row(t: EmailTemplateRecord) -> dict[str, Any]:
    return {
        "template_id": t.template_id,
        "name": t.name,
        "description": t.description,
        "subject_template": t.subject_template,
        "body_template": t.body_template,
        "parameters": [p.model_dump() for p in t.parameters],
        "tool_id": t.tool_id,
        "created_at": t.created_at,
    }


def _email_row(mail: EmailSent | EmailFailed, at: datetime) -> dict[str, Any]:
    sent = isinstance(mail, EmailSent)
    return {
        "email_id": mail.causation_id or mail.message_id,
        "conversation_id": mail.conversation_id,
        "template_id": mail.template_id,
        "to_email": mail.to_email,
        "from_email": mail.from_email if isinstance(mail, EmailSent) else None,
        "subject": mail.subject,
        "status": "sent" if sent else "failed",
        "transport": mail.transport if isinstance(mail, EmailSent) else None,
        "error": None if isinstance(mail, EmailSent) else mail.error,
        "permanent": None if isinstance(mail, EmailSent) else mail.permanent,
        "at_unix": int(at.timestamp()),
    }


def _campaign_row(c: CampaignSnapshot) -> dict[str, Any]:
    return {
        "campaign_id": c.campaign_id,
        "name": c.name,
        "agent_id": c.agent_id,
        "phone_number_id": c.phone_number_id,
        "phone_provider": c.phone_provider,
        "status": c.status,
        "status_reason": c.status_reason,
        "created_at_unix": c.created_at_unix,
        "scheduled_time_unix": c.scheduled_time_unix,
        "timezone": c.timezone,
        "retry_count": c.retry_count,
        "total_calls_scheduled": c.total_calls_scheduled,
        "total_calls_dispatched": c.total_calls_dispatched,
        "total_calls_finished": c.total_calls_finished,
        "last_updated_at_unix": c.last_updated_at_unix,
        "phone_numbers": [p.model_dump() for p in c.phone_numbers],
        "max_total_minutes": c.max_total_minutes,
        "call_minutes_used": c.call_minutes_used,
    }


# The recipient as `/calls` shows it, in the live progress streams' `recipient` events.
_RECIPIENT_CHANGE_FIELDS = (
    "recipient_id",
    "position",
    "to_number",
    "status",
    "conversation_id",
    "duration_seconds",
    "outcome",
    "retry_count",
    "next_attempt_at_unix",
    "time_zones",
    "reason",
    "waiting_reason",
)


def _recipient_change(r: CampaignRecipientUpdated | CampaignRecipient) -> dict[str, Any]:
    """A `recipient` event of the live progress streams, from a recipient event or from the read
    model's row (a recipient a bulk event changed): both carry the same fields."""
    return {"job_id": r.campaign_id} | {name: getattr(r, name) for name in _RECIPIENT_CHANGE_FIELDS}


def _phone_row(p: PhoneNumberRecord) -> dict[str, Any]:
    return {
        "phone_number_id": p.phone_number_id,
        "phone_number": p.phone_number,
        "label": p.label,
        "provider": p.provider,
        "agent_id": p.agent_id,
        "supports_inbound": p.supports_inbound,
        "supports_outbound": p.supports_outbound,
        "created_at_unix": p.created_at_unix,
    }


def _call_row(call: CallPlaced) -> dict[str, Any]:
    return {
        "conversation_id": call.conversation_id,
        "provider": call.provider,
        "call_sid": call.call_sid,
        "sip_call_id": call.sip_call_id,
        "agent_id": call.agent_id,
        "phone_number_id": call.phone_number_id,
        "to_number": call.to_number,
        "status": "dialing",
        "ecommerce_enabled": call.ecommerce_platform is not None,
        "campaign_id": call.campaign_id,
        "recipient_id": call.recipient_id,
        "attempt": call.attempt,
        "placed_at_unix": call.placed_at_unix,
        "quiet_hours_overridden": call.quiet_hours_overridden,
    }


def _tool_row(t: Any) -> dict[str, Any]:
    return {
        "tool_id": t.tool_id,
        "name": t.name,
        "description": t.description,
        "type": t.type,
        "purpose": t.purpose,
        "tool_config": t.tool_config,
        "created_at_unix": t.created_at_unix,
    }
