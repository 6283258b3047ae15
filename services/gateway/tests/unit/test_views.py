"""What the API shows of each resource (`gateway.views`): one shape per answer, the same whether it is
built from the resource's event (a write's answer, a live stream's event) or from its read-model row
(a later read)."""

from __future__ import annotations

from contracts.campaigns import CallerIdStats, CampaignSnapshot, CampaignUpdated
from gateway import views
from gateway.domain import outcome_of
from gateway.models import Campaign, DoNotCall


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


def test_a_listed_job_is_its_id_name_status_and_counters() -> None:
    assert views.job_summary_view(_row(_snapshot())) == {
        "id": "batch_1",
        "name": "Spring",
        "status": "paused",
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
