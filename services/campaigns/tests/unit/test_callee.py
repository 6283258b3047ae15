"""What the callee said and the analysis decide after a call: opt-out, callbacks, analysis rules.
Pure: the clock is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from campaigns import callee
from contracts.campaigns import AnalysisRule

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
RULES = [
    AnalysisRule(value="call_back_later", action="retry", delay_s=7200),
    AnalysisRule(value="wrong_person", action="finish"),
    AnalysisRule(field="interest", value="none", action="finish"),
]


def decide(**overrides: Any) -> callee.CalleeDecision | None:
    values: dict[str, Any] = {
        "call_status": "completed",
        "opted_out": False,
        "callback_pending": False,
        "callback_at": None,
        "rules": RULES,
        "data_collection": {},
        "retries_used": 0,
        "retry_count": 2,
        "may_retry": True,
        "now": NOW,
    }
    return callee.after_call(**(values | overrides))


def test_an_opt_out_ends_the_recipient_whatever_else_was_said() -> None:
    said = decide(
        opted_out=True,
        callback_pending=True,
        callback_at=NOW + timedelta(days=1),
        data_collection={"outcome": "call_back_later"},
    )
    assert said == callee.CalleeDecision("opted_out", callee.OPTED_OUT_REASON)


def test_an_owed_callback_is_an_extra_attempt_at_the_asked_time_not_a_retry() -> None:
    at = NOW + timedelta(hours=26)
    said = decide(callback_pending=True, callback_at=at, retries_used=2, retry_count=2)
    assert said is not None
    assert (said.status, said.next_attempt_at, said.counts_as_retry) == ("scheduled", at, False)


def test_a_callback_asked_for_a_past_time_is_dialled_now() -> None:
    said = decide(callback_pending=True, callback_at=NOW - timedelta(minutes=5))
    assert said is not None and said.next_attempt_at == NOW


def test_no_callback_once_the_campaign_stopped() -> None:
    assert decide(callback_pending=True, callback_at=NOW + timedelta(hours=1), may_retry=False) is None


def test_an_analysis_value_asks_for_a_retry_after_its_delay_and_counts_it() -> None:
    said = decide(data_collection={"outcome": "Call_Back_Later"})
    assert said is not None
    assert (said.status, said.next_attempt_at, said.counts_as_retry) == (
        "scheduled",
        NOW + timedelta(hours=2),
        True,
    )
    scaled = decide(data_collection={"outcome": "call_back_later"}, delay_scale=0.5)
    assert scaled is not None and scaled.next_attempt_at == NOW + timedelta(hours=1)


def test_an_analysis_retry_without_retries_left_ends_the_recipient() -> None:
    said = decide(data_collection={"outcome": "call_back_later"}, retries_used=2)
    assert said is not None and said.status == "completed" and said.next_attempt_at is None
    assert "none left" in (said.reason or "")


def test_an_analysis_value_ends_the_recipient_even_when_telephony_would_retry() -> None:
    said = decide(call_status="voicemail", data_collection={"outcome": "wrong_person"})
    assert said == callee.CalleeDecision("voicemail", "Ended by the analysis: outcome = wrong_person")


def test_rules_name_any_data_collection_field_and_read_through_result_objects() -> None:
    said = decide(data_collection={"interest": {"data_collection_id": "interest", "value": "None"}})
    assert said is not None and said.status == "completed" and "interest = none" in (said.reason or "")


def test_no_matching_rule_leaves_the_telephony_outcome_to_decide() -> None:
    assert decide(data_collection={"outcome": "appointment_confirmed"}) is None
    assert decide(data_collection={}) is None
    assert decide(data_collection={"outcome": None}) is None


def test_the_first_matching_rule_wins() -> None:
    rules = [AnalysisRule(value="x", action="finish"), AnalysisRule(value="x", action="retry")]
    rule = callee.matching_rule(rules, {"outcome": "x"})
    assert rule is not None and rule.action == "finish"


def test_callback_time_and_follow_up_ids() -> None:
    later = int((NOW + timedelta(hours=3)).timestamp())
    assert callee.callback_time(later, NOW) == NOW + timedelta(hours=3)
    assert callee.callback_time(int(NOW.timestamp()) - 60, NOW) == NOW
    assert callee.follow_up_message_id("conv_1") == callee.follow_up_message_id("conv_1")
    assert callee.follow_up_message_id("conv_1") != callee.follow_up_message_id("conv_2")
