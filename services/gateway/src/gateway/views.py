"""What the API shows of each resource, each shape built in one place (pure: no I/O).

A view takes the resource's event record (a command's outcome) or its read-model row: both carry
the same attribute names, so an answer and a later read of the same resource cannot drift apart.
Key order is the order a client sees in answers that are not re-serialised through a response model.
"""

from __future__ import annotations

from typing import Any

from contracts.campaigns import CampaignSnapshot
from gateway.models import Campaign, DoNotCall

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
