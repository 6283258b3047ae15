"""What the API shows of each resource (`gateway.views`): one shape per answer, the same whether it is
built from the resource's event (a write's answer, a live stream's event) or from its read-model row
(a later read)."""

from __future__ import annotations

from contracts.campaigns import CallerIdStats, CampaignSnapshot, CampaignUpdated
from contracts.provisioning import (
    AgentRecord,
    AgentUpdated,
    EmailTemplateCreated,
    EmailTemplateRecord,
    TemplateParameter,
    ToolCreated,
    ToolRecord,
)
from contracts.telephony import PhoneNumberRecord, PhoneNumberUpdated
from gateway import views
from gateway.domain import outcome_of
from gateway.models import Agent, Campaign, DoNotCall, EmailTemplate, PhoneNumber, Tool


def _snapshot(**changes: object) -> CampaignSnapshot:
    fields: dict[str, object] = {
        "campaign_id": "batch_1",
        "name": "Spring",
        "agent_id": "agent_1",
        "phone_number_id": "pn_1",
        "phone_provider": "twilio",
        "status": "paused",
        "status_reason": "paused by the operator",
        "created_at_unix": 1_700_000_000,
        "scheduled_time_unix": None,
        "timezone": "Europe/Berlin",
        "retry_count": 2,
        "total_calls_scheduled": 10,
        "total_calls_dispatched": 4,
        "total_calls_finished": 3,
        "last_updated_at_unix": 1_700_000_100,
        "phone_numbers": [CallerIdStats(phone_number_id="pn_1", dials=4, answered=1, answer_rate=0.25)],
        "max_total_minutes": 30.0,
        "call_minutes_used": 2.5,
    }
    return CampaignSnapshot.model_validate(fields | changes)


def _row(snapshot: CampaignSnapshot) -> Campaign:
    """The read model's row the projection writes for this snapshot (the pool stored as dicts)."""
    return Campaign(**snapshot.model_dump())


def test_a_write_answers_the_job_in_the_spec_order_from_its_event() -> None:
    snapshot = _snapshot()
    answer = outcome_of(CampaignUpdated(campaign=snapshot), "campaign.submit")
    assert answer.body == views.job_view(snapshot)
    # Not re-serialised through a response model: the order is what the client reads.
    assert list(answer.body) == ["id", *views.JOB_FIELDS]
    assert answer.body["id"] == "batch_1"
    assert answer.body["total_calls_finished"] == 3


def test_a_job_read_back_from_its_row_shows_what_its_event_showed() -> None:
    snapshot = _snapshot()
    assert views.job_view(_row(snapshot)) == views.job_view(snapshot)
    assert views.job_progress_view(_row(snapshot)) == views.job_progress_view(snapshot)


def test_a_progress_event_carries_the_status_and_counters() -> None:
    event = views.job_progress_view(_snapshot(status="failed", status_reason="agent deleted"))
    assert event == {
        "id": "batch_1",
        "name": "Spring",
        "status": "failed",
        "status_reason": "agent deleted",
        "total_calls_scheduled": 10,
        "total_calls_dispatched": 4,
        "total_calls_finished": 3,
        "last_updated_at_unix": 1_700_000_100,
    }
    assert list(event) == ["id", *views.JOB_PROGRESS_FIELDS]


def test_the_job_detail_adds_the_pool_budget_reason_and_agent_name_to_the_job() -> None:
    row = _row(_snapshot())
    detail = views.job_detail_view(row, agent_name=None)
    assert detail.items() >= views.job_view(row).items()
    assert detail["agent_name"] is None
    assert detail["status_reason"] == "paused by the operator"
    assert detail["phone_numbers"] == [
        {"phone_number_id": "pn_1", "dials": 4, "answered": 1, "answer_rate": 0.25, "daily_cap": None}
    ]
    assert (detail["max_total_minutes"], detail["call_minutes_used"]) == (30.0, 2.5)
    assert views.job_detail_view(row, agent_name="Ava")["agent_name"] == "Ava"


def test_a_listed_job_is_its_id_name_status_its_reason_and_counters() -> None:
    assert views.job_summary_view(_row(_snapshot())) == {
        "id": "batch_1",
        "name": "Spring",
        "status": "paused",
        "status_reason": "paused by the operator",
        "total_calls_scheduled": 10,
        "total_calls_dispatched": 4,
        "total_calls_finished": 3,
    }


def test_a_do_not_call_entry_names_its_source() -> None:
    entry = DoNotCall(
        phone_number="+14155550103", reason="asked", added_at_unix=5, source="voice", conversation_id="c1"
    )
    assert views.do_not_call_view(entry) == {
        "phone_number": "+14155550103",
        "reason": "asked",
        "added_at_unix": 5,
        "source": "voice",
        "conversation_id": "c1",
    }


# ---- resources whose event and row carry the same fields -------------------------------------


def test_a_template_reads_back_as_its_create_answered_it() -> None:
    record = EmailTemplateRecord(
        template_id="welcome",
        name="welcome",
        description="After a sale",
        subject_template="Hi {{name}}",
        body_template="Thanks, {{name}}",
        parameters=[TemplateParameter(name="order", required=True)],
        tool_id="tool_1",
        created_at="2026-11-30T09:00:00Z",
    )
    row = EmailTemplate(**record.model_dump())  # what the projection stores: parameters as dicts
    answer = outcome_of(
        EmailTemplateCreated(
            template=record, tool=ToolRecord(tool_id="tool_1", name="welcome", created_at_unix=1)
        )
    )
    assert answer.body == views.template_view(record) == views.template_view(row)
    assert answer.body["parameters"] == [{"name": "order", "description": "", "required": True}]
    assert views.template_summary_view(row) == {
        "template_id": "welcome",
        "name": "welcome",
        "tool_id": "tool_1",
        "created_at": "2026-11-30T09:00:00Z",
    }


def test_a_phone_number_reads_back_as_its_update_answered_it() -> None:
    record = PhoneNumberRecord(
        phone_number_id="pn_1",
        phone_number="+14155550103",
        label="Sales",
        provider="twilio",
        agent_id="agent_1",
        created_at_unix=1,
    )
    row = PhoneNumber(**record.model_dump(exclude={"sip_username"}))
    assert views.phone_view(record) == views.phone_view(row)
    # An update answers without the provider (api-v1.md 8.4).
    assert outcome_of(PhoneNumberUpdated(phone=record)).body == {
        "phone_number_id": "pn_1",
        "phone_number": "+14155550103",
        "label": "Sales",
        "agent_id": "agent_1",
    }


def test_an_agent_reads_back_as_its_update_answered_it_and_lists_as_a_summary() -> None:
    config = {"agent": {"language": "en", "first_message": "Hi", "prompt": {"prompt": "long"}}, "tts": {}}
    record = AgentRecord(agent_id="agent_1", name="Ava", conversation_config=config, created_at_unix=1)
    row = Agent(**record.model_dump())
    assert outcome_of(AgentUpdated(agent=record)).body == views.agent_view(record) == views.agent_view(row)
    assert views.agent_summary_view(row) == {
        "agent_id": "agent_1",
        "name": "Ava",
        "conversation_config": {"agent": {"language": "en", "first_message": "Hi"}},
    }


def test_a_tool_is_shown_whole_by_id_and_in_part_when_created_or_listed() -> None:
    record = ToolRecord(
        tool_id="t1", name="orders", description="Looks up orders", tool_config={"a": 1}, created_at_unix=7
    )
    row = Tool(**record.model_dump(exclude={"token"}))
    assert outcome_of(ToolCreated(tool=record)).body == {
        "tool_id": "t1",
        "name": "orders",
        "description": "Looks up orders",
        "type": "webhook",
    }
    assert views.tool_view(row) == {
        "tool_id": "t1",
        "name": "orders",
        "description": "Looks up orders",
        "type": "webhook",
        "tool_config": {"a": 1},
        "created_at_unix": 7,
    }
    assert views.tool_view(row, views.TOOL_SUMMARY_FIELDS) == {
        "tool_id": "t1",
        "name": "orders",
        "type": "webhook",
    }
