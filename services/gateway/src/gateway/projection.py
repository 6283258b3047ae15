"""The projection: events of every service the gateway fronts become its read models, the live
progress log (`Changes`) and the outcomes of waiting operations, each event once (its inbox claim).
Also the operations no event will ever answer: a command the relay cannot publish, or one its
service dead-lettered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from bus.limits import is_too_large
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
from gateway.models import (
    Agent,
    Call,
    Campaign,
    CampaignRecipient,
    CustomerSession,
    DoNotCall,
    Email,
    EmailTemplate,
    KnowledgeDocument,
    PhoneNumber,
    Tool,
    Webhook,
)
from gateway.uow import UnitOfWork

PROJECTION = "gateway.projection"

log = structlog.get_logger("gateway")


class Projection:
    """Applies events to the read models (`project`) and fails operations no event will answer."""

    def __init__(self, uow: Callable[[], UnitOfWork]) -> None:
        self.uow = uow

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
                    await rm.add_do_not_call(
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
            if event.causation_id and domain.may_conclude(event):
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
