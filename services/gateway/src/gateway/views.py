"""What the API shows of each resource, each shape built in one place (pure: no I/O).

A view takes the resource's event record (a command's outcome) or its read-model row: both carry
the same attribute names, so an answer and a later read of the same resource cannot drift apart.
Key order is the order a client sees in answers that are not re-serialised through a response model.
"""

from __future__ import annotations

from typing import Any

from contracts.campaigns import CampaignSnapshot
from contracts.notifier import WebhookDeliveryUpdated, WebhookSubscriptionRecord
from contracts.provisioning import AgentRecord, EmailTemplateRecord, ToolRecord
from contracts.telephony import PhoneNumberRecord
from gateway.models import (
    Agent,
    Call,
    Campaign,
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

# ---- agents ----------------------------------------------------------------------------------


def agent_view(a: AgentRecord | Agent) -> dict[str, Any]:
    """An agent (api-v1.md 6.2): an update's answer and `GET /agents/{id}`."""
    return {"agent_id": a.agent_id, "name": a.name, "conversation_config": a.conversation_config}


def agent_summary_view(a: Agent) -> dict[str, Any]:
    """One agent of `GET /agents`: of its config only the agent's language and first message."""
    agent_cfg = a.conversation_config.get("agent", {})
    summary = {k: agent_cfg[k] for k in ("language", "first_message") if k in agent_cfg}
    return {"agent_id": a.agent_id, "name": a.name, "conversation_config": {"agent": summary}}


# ---- tools -----------------------------------------------------------------------------------

#: A created tool's answer (api-v1.md 3.1), after its `tool_id`.
TOOL_CREATED_FIELDS = ("name", "description", "type")
#: `GET /tools/{id}`.
TOOL_FIELDS = (*TOOL_CREATED_FIELDS, "tool_config", "created_at_unix")
#: One tool of `GET /tools`.
TOOL_SUMMARY_FIELDS = ("name", "type")


def tool_view(t: ToolRecord | Tool, fields: tuple[str, ...] = TOOL_FIELDS) -> dict[str, Any]:
    """A tool: `tool_id`, then `fields` (`TOOL_CREATED_FIELDS`, `TOOL_FIELDS`, `TOOL_SUMMARY_FIELDS`)."""
    return {"tool_id": t.tool_id} | {name: getattr(t, name) for name in fields}


# ---- knowledge base --------------------------------------------------------------------------


def document_view(d: KnowledgeDocument) -> dict[str, Any]:
    """One document of `GET /knowledge-base` (`GET /knowledge-base/{id}` adds `document_id`)."""
    return {
        "id": d.document_id,
        "name": d.name,
        "type": d.type,
        "status": d.status,
        "created_at_unix": d.created_at_unix,
    }


# ---- phone numbers ---------------------------------------------------------------------------


def phone_view(p: PhoneNumberRecord | PhoneNumber) -> dict[str, Any]:
    """A phone number (api-v1.md 8.3); `GET /phone-numbers/{id}` adds what it supports."""
    return {
        "phone_number_id": p.phone_number_id,
        "phone_number": p.phone_number,
        "label": p.label,
        "agent_id": p.agent_id,
        "provider": p.provider,
    }


# ---- e-mail templates ------------------------------------------------------------------------


def template_view(t: EmailTemplateRecord | EmailTemplate) -> dict[str, Any]:
    """An e-mail template (api-v1.md 5.1): a create's answer and `GET /email-templates/{id}`
    (the row keeps its parameters as the event's, dumped)."""
    return {
        "template_id": t.template_id,
        "name": t.name,
        "description": t.description,
        "subject_template": t.subject_template,
        "body_template": t.body_template,
        "parameters": [p if isinstance(p, dict) else p.model_dump() for p in t.parameters],
        "tool_id": t.tool_id,
        "created_at": t.created_at,
    }


def template_summary_view(t: EmailTemplate) -> dict[str, Any]:
    """One template of `GET /email-templates`."""
    return {"template_id": t.template_id, "name": t.name, "tool_id": t.tool_id, "created_at": t.created_at}


# ---- calls -----------------------------------------------------------------------------------


def call_view(c: Call) -> dict[str, Any]:
    """A placed call as the read model knows it (`GET /calls`, `/calls/{id}`)."""
    return {
        "conversation_id": c.conversation_id,
        "status": c.status,
        "provider": c.provider,
        "agent_id": c.agent_id,
        "phone_number_id": c.phone_number_id,
        "to_number": c.to_number,
        "call_sid": c.call_sid,
        "sip_call_id": c.sip_call_id,
        "duration_seconds": c.duration_seconds,
        "outcome": c.outcome,
        "summary": c.summary,
        "reason": c.reason,
        "ecommerce_enabled": c.ecommerce_enabled,
        "campaign_id": c.campaign_id,
        "recipient_id": c.recipient_id,
        "attempt": c.attempt,
        "placed_at_unix": c.placed_at_unix,
        "ended_at_unix": c.ended_at_unix,
        "quiet_hours_overridden": c.quiet_hours_overridden,
    }


# ---- campaigns (batch jobs) ------------------------------------------------------------------

#: The batch job as a write answers it (api-v1.md 10.1), after its `id`.
JOB_FIELDS = (
    "name",
    "agent_id",
    "status",
    "phone_number_id",
    "phone_provider",
    "created_at_unix",
    "scheduled_time_unix",
    "timezone",
    "total_calls_dispatched",
    "total_calls_scheduled",
    "total_calls_finished",
    "retry_count",
)
#: What `GET /batch-calling/{id}` adds from the read model (`agent_name` comes from the agent's).
JOB_DETAIL_FIELDS = (
    "last_updated_at_unix",
    "phone_numbers",
    "max_total_minutes",
    "call_minutes_used",
    "status_reason",
)
#: A job in `GET /batch-calling`'s list.
JOB_SUMMARY_FIELDS = (
    "name",
    "status",
    "status_reason",  # a list must not show a campaign that reached nobody as a plain success
    "total_calls_scheduled",
    "total_calls_dispatched",
    "total_calls_finished",
)
#: A `campaign` event of the live progress streams: the job's status and counters.
JOB_PROGRESS_FIELDS = (
    "name",
    "status",
    "status_reason",
    "total_calls_scheduled",
    "total_calls_dispatched",
    "total_calls_finished",
    "last_updated_at_unix",
)

CampaignLike = CampaignSnapshot | Campaign


def _job(c: CampaignLike, fields: tuple[str, ...]) -> dict[str, Any]:
    return {"id": c.campaign_id} | {name: getattr(c, name) for name in fields}


def job_view(c: CampaignLike) -> dict[str, Any]:
    """A batch job as a write answers it (submit; api-v1.md 10.1): `id` then `JOB_FIELDS`."""
    return _job(c, JOB_FIELDS)


def job_detail_view(c: Campaign, agent_name: str | None) -> dict[str, Any]:
    """`GET /batch-calling/{id}`: the job, `JOB_DETAIL_FIELDS` (the caller-ID pool as stored:
    dicts), and its agent's name (null once the agent is deleted)."""
    return _job(c, JOB_FIELDS + JOB_DETAIL_FIELDS) | {"agent_name": agent_name}


def job_summary_view(c: Campaign) -> dict[str, Any]:
    """One job of `GET /batch-calling`."""
    return _job(c, JOB_SUMMARY_FIELDS)


def job_progress_view(c: CampaignLike) -> dict[str, Any]:
    """A `campaign` event of the live progress streams, from the event that changed the job or
    from its row (the stream's first event)."""
    return _job(c, JOB_PROGRESS_FIELDS)


# ---- do-not-call list ------------------------------------------------------------------------


def do_not_call_view(d: DoNotCall) -> dict[str, Any]:
    """One listed number: `source` api or voice (opted out during `conversation_id`)."""
    return {
        "phone_number": d.phone_number,
        "reason": d.reason,
        "added_at_unix": d.added_at_unix,
        "source": d.source,
        "conversation_id": d.conversation_id,
    }


# ---- e-mails agents sent ---------------------------------------------------------------------


def email_view(e: Email) -> dict[str, Any]:
    """An e-mail an agent sent or failed to send (`GET /emails`)."""
    return {
        "email_id": e.email_id,
        "conversation_id": e.conversation_id,
        "template_id": e.template_id,
        "to_email": e.to_email,
        "from_email": e.from_email,
        "subject": e.subject,
        "status": e.status,
        "transport": e.transport,
        "error": e.error,
        "permanent": e.permanent,
        "at_unix": e.at_unix,
    }


# ---- customer sessions -----------------------------------------------------------------------


def session_view(s: CustomerSession) -> dict[str, Any]:
    """A customer session (api-v1.md 5.5): `customer_info` holds only the fields given."""
    info = {k: v for k, v in {"name": s.name, "email": s.email, "phone": s.phone}.items() if v is not None}
    return {"conversation_id": s.conversation_id, "customer_info": info, "created_at_unix": s.created_at_unix}


# ---- webhooks to the customer's systems ------------------------------------------------------


def webhook_view(w: WebhookSubscriptionRecord | Webhook) -> dict[str, Any]:
    """A webhook as the API shows it (never its secret), from the notifier's record (whose
    `subscription_id` is our `webhook_id`) or the read model's row, which stores this shape."""
    return {
        "webhook_id": w.subscription_id if isinstance(w, WebhookSubscriptionRecord) else w.webhook_id,
        "url": w.url,
        "event_types": list(w.event_types),
        "description": w.description,
        "status": w.status,
        "disabled_reason": w.disabled_reason,
        "consecutive_failures": w.consecutive_failures,
        "failing_since_unix": w.failing_since_unix,
        "created_at_unix": w.created_at_unix,
    }


def delivery_view(d: WebhookDeliveryUpdated | WebhookDelivery) -> dict[str, Any]:
    """A delivery as the resend answers it, from the notifier's event or the read model's row,
    which stores this shape (`delivery_log_view` adds its attempts)."""
    return {
        "delivery_id": d.delivery_id,
        "webhook_id": d.subscription_id if isinstance(d, WebhookDeliveryUpdated) else d.webhook_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at_unix": d.next_attempt_at_unix,
        "created_at_unix": d.created_at_unix,
    }


def attempt_view(a: WebhookDeliveryAttempt) -> dict[str, Any]:
    """One delivery attempt: timing in ms, the receiver's status code and answer excerpt, or the error."""
    return {
        "attempt": a.attempt,
        "started_at_ms": a.started_at_ms,
        "duration_ms": a.duration_ms,
        "status_code": a.status_code,
        "response_excerpt": a.response_excerpt,
        "error": a.error,
        "manual": a.manual,
    }


def delivery_log_view(d: WebhookDelivery, attempts: list[WebhookDeliveryAttempt]) -> dict[str, Any]:
    """A delivery of `GET /webhooks/{id}/deliveries`, with every attempt (`attempt_log`)."""
    return delivery_view(d) | {"attempt_log": [attempt_view(a) for a in attempts]}
