"""The campaign and recipient state machines (domain): allowed transitions, the fields that change
together, and what each change announces. Rows are plain (transient) model objects: no session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from campaigns import domain
from campaigns.domain import AttemptStatus, CampaignChanged, CampaignStatus, RecipientChanged, RecipientStatus
from campaigns.models import Attempt, Campaign, Recipient

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def campaign(**values: Any) -> Campaign:
    fields: dict[str, Any] = {
        "campaign_id": "c1",
        "status": CampaignStatus.RUNNING,
        "status_reason": None,
        "ready": True,
        "scheduled_time_unix": None,
        "total_scheduled": 3,
        "total_dispatched": 0,
        "total_finished": 0,
        "in_flight": 0,
        "recent_outcomes": "",
        "progress_dirty": False,
    }
    return Campaign(**(fields | values))


def recipient(**values: Any) -> Recipient:
    fields: dict[str, Any] = {
        "id": 7,
        "status": RecipientStatus.SCHEDULED,
        "reason": None,
        "retries": 0,
        "attempts": 0,
        "dispatched": False,
        "next_attempt_at": NOW,
        "waiting_reason": None,
        "conversation_id": None,
        "duration_seconds": None,
        "opted_out": False,
        "callback_at": None,
        "callback_requested": None,
        "callback_pending": False,
    }
    return Recipient(**(fields | values))


# ---- recipients ---------------------------------------------------------------------------------


def attempt(**values: Any) -> Attempt:
    """Attempt 1 of recipient r1, in flight unless `values` say otherwise."""
    fields: dict[str, Any] = {
        "message_id": "m1",
        "campaign_id": "c1",
        "recipient_id": "r1",
        "attempt": 1,
        "recipient_pk": 1,
        "to_number": "+14155550100",
        "phone_number_id": "pn",
        "status": AttemptStatus.DIALING,
        "call_status": None,
        "reason": None,
        "conversation_id": None,
        "dialed_at": NOW,
        "finished_at": None,
    }
    return Attempt(**(fields | values))


def test_finishing_a_recipient_changes_every_field_that_moves_with_it() -> None:
    c, r = campaign(), recipient()
    changes = domain.finish_recipient(c, r, RecipientStatus.SKIPPED_DNC, "listed")
    assert (r.status, r.reason, r.next_attempt_at) == ("skipped_dnc", "listed", None)
    assert (c.total_finished, c.progress_dirty) == (1, True)
    assert changes == [RecipientChanged(r)]


def test_a_recipient_already_final_is_not_counted_again_when_it_opts_out() -> None:
    c, r = campaign(total_finished=1), recipient(status="completed", next_attempt_at=None)
    assert domain.opt_out(c, r, "Opted out") == [RecipientChanged(r)]
    assert (r.status, r.opted_out, c.total_finished) == ("opted_out", True, 1)


def test_a_call_in_flight_opts_out_with_its_attempt_not_at_once() -> None:
    c, r = campaign(), recipient(status=RecipientStatus.DIALING, callback_pending=True)
    assert domain.opt_out(c, r, "Opted out") == []
    assert (r.status, r.opted_out, r.callback_pending, c.total_finished) == ("dialing", True, False, 0)


def test_finishing_with_a_status_that_is_not_final_is_refused() -> None:
    with pytest.raises(domain.InvalidTransition):
        domain.finish_recipient(campaign(), recipient(), RecipientStatus.DIALING, None)


_MOVES: dict[str, Callable[[Recipient], object]] = {
    "scheduled": lambda r: domain.hold_recipient(r, NOW, "calling_window"),
    "dialing": lambda r: domain.start_attempt(campaign(), r, 1),
    "in_progress": lambda r: domain.call_in_progress(r, attempt(), "conv"),
    "failed": lambda r: domain.finish_recipient(campaign(), r, "failed", None),
}


@pytest.mark.parametrize(
    ("start", "to"),
    [
        ("completed", "failed"),  # an outcome is never rewritten
        ("cancelled", "scheduled"),  # a closed recipient is never reopened
        ("skipped_duplicate", "dialing"),
        ("opted_out", "scheduled"),
        ("scheduled", "in_progress"),  # answered without being dialled
    ],
)
def test_transitions_outside_the_machine_are_refused(start: str, to: str) -> None:
    r = recipient(status=start)
    move = _MOVES[to]
    with pytest.raises(domain.InvalidTransition):
        move(r)
    assert r.status == start


def test_a_dial_clears_the_last_call_and_counts_the_recipient_dispatched_once() -> None:
    c = campaign()
    r = recipient(conversation_id="old", duration_seconds=9, callback_pending=True, waiting_reason="x")
    assert domain.start_attempt(c, r, 1) == [RecipientChanged(r)]
    assert (r.status, r.attempts, r.next_attempt_at, r.waiting_reason) == ("dialing", 1, None, None)
    assert (r.conversation_id, r.duration_seconds, r.callback_pending) == (None, None, False)
    assert (c.total_dispatched, c.in_flight, c.progress_dirty) == (1, 1, True)
    domain.end_attempt(c, attempt(), NOW, call_status="busy", reason="busy")
    domain.retry_recipient(c, r, NOW, "busy")
    domain.start_attempt(c, r, 2)
    assert (c.total_dispatched, c.in_flight, r.retries, r.attempts) == (1, 1, 1, 2)


def test_an_upstream_429_waits_again_without_using_a_retry() -> None:
    c, r, a = campaign(in_flight=1), recipient(status=RecipientStatus.DIALING), attempt()
    domain.end_attempt(c, a, NOW, status=AttemptStatus.RATE_LIMITED)
    domain.wait_again(r, NOW + timedelta(seconds=5))
    assert (r.status, r.retries, r.next_attempt_at, c.in_flight) == (
        "scheduled",
        0,
        NOW + timedelta(seconds=5),
        0,
    )
    assert (a.status, a.call_status, a.finished_at) == ("rate_limited", None, NOW)  # nobody was called
    domain.end_attempt(c, attempt(), NOW)
    assert c.in_flight == 0  # never below zero


def test_an_attempt_answered_then_ended_keeps_its_conversation_status_and_reason() -> None:
    c, r, a = campaign(in_flight=1), recipient(status=RecipientStatus.DIALING), attempt()
    domain.call_in_progress(r, a, "conv_1")
    assert (a.status, a.conversation_id, r.status, r.conversation_id) == (
        "in_progress",
        "conv_1",
        "in_progress",
        "conv_1",
    )
    domain.end_attempt(c, a, NOW, call_status="completed", reason="agent hung up")
    assert (a.status, a.call_status, a.reason, a.finished_at, c.in_flight) == (
        "ended",
        "completed",
        "agent hung up",
        NOW,
        0,
    )


@pytest.mark.parametrize("closed", [AttemptStatus.ENDED, AttemptStatus.RATE_LIMITED])
def test_an_ended_attempt_is_never_ended_again(closed: str) -> None:
    c, a = campaign(in_flight=1), attempt(status=closed, call_status="completed")
    with pytest.raises(domain.InvalidTransition):
        domain.end_attempt(c, a, NOW, call_status="failed", reason="late")
    assert (a.status, a.call_status, c.in_flight) == (closed, "completed", 1)


@pytest.mark.parametrize(
    ("attempts", "status", "current"),
    [
        (1, RecipientStatus.DIALING, True),
        (1, RecipientStatus.IN_PROGRESS, True),
        (2, RecipientStatus.DIALING, False),  # a later attempt superseded it
        (1, RecipientStatus.SCHEDULED, False),  # waiting for a retry
        (1, RecipientStatus.COMPLETED, False),
        (1, RecipientStatus.OPTED_OUT, False),
    ],
)
def test_only_the_recipients_latest_attempt_in_flight_is_current(
    attempts: int, status: str, current: bool
) -> None:
    assert domain.is_current(attempt(), recipient(attempts=attempts, status=status)) is current


def test_a_call_end_records_its_conversation_duration_outcome_and_the_campaigns_totals() -> None:
    c = campaign(call_seconds=100, longest_call_s=90)
    r, a = recipient(status=RecipientStatus.IN_PROGRESS, outcome=None), attempt()
    domain.record_call(c, a, r, "conv_9", 120, "success")
    assert (a.conversation_id, r.conversation_id, r.duration_seconds, r.outcome) == (
        "conv_9",
        "conv_9",
        120,
        "success",
    )
    assert (c.call_seconds, c.longest_call_s) == (220, 120)
    domain.record_call(c, attempt(), recipient(), None, None, None)  # a call that never connected
    assert (c.call_seconds, c.longest_call_s) == (220, 120)


def test_a_callback_reopens_an_ended_call_and_unfinishes_it() -> None:
    c, r = campaign(total_finished=2), recipient(status="no_answer", next_attempt_at=None)
    assert domain.may_call_back(r)
    asked = NOW + timedelta(hours=1)
    assert domain.book_callback(c, r, asked + timedelta(minutes=1), asked, "after lunch") == [
        RecipientChanged(r)
    ]
    assert (r.status, r.next_attempt_at, r.callback_pending) == (
        "scheduled",
        asked + timedelta(minutes=1),
        True,
    )
    assert r.reason == f"Callback requested for {asked.isoformat()}"
    assert (c.total_finished, c.progress_dirty) == (1, True)


def test_a_callback_for_a_call_in_flight_waits_for_its_outcome() -> None:
    c, r = campaign(), recipient(status=RecipientStatus.IN_PROGRESS, next_attempt_at=None)
    domain.book_callback(c, r, NOW, NOW, None)
    assert (r.status, r.next_attempt_at, r.callback_pending, c.total_finished) == (
        "in_progress",
        None,
        True,
        0,
    )


@pytest.mark.parametrize("status", ["cancelled", "skipped_dnc", "skipped_duplicate", "opted_out"])
def test_no_callback_for_a_recipient_closed_without_a_call(status: str) -> None:
    assert not domain.may_call_back(recipient(status=status))
    assert not domain.may_call_back(recipient(opted_out=True))


def test_a_recipient_closed_by_its_ended_campaign_takes_its_status_and_reason() -> None:
    assert domain.closed_by_campaign(campaign(status="cancelled")) == ("cancelled", "Campaign cancelled")
    assert domain.closed_by_campaign(campaign(status="failed", status_reason="bad agent")) == (
        "failed",
        "bad agent",
    )


def test_status_on_arrival() -> None:
    assert domain.status_on_arrival("invalid number", "cancelled") == ("failed", "invalid number")
    assert domain.status_on_arrival(None, "cancelled") == ("cancelled", "Campaign cancelled")
    assert domain.status_on_arrival(None, None) == ("scheduled", None)
    assert domain.status_on_arrival(None, "running") == ("scheduled", None)


# ---- campaigns ----------------------------------------------------------------------------------


def test_a_campaign_is_done_once_every_recipient_is_final_and_no_call_is_in_flight() -> None:
    c = campaign(total_finished=3, in_flight=1, status_reason="x")
    assert not domain.is_done(c)
    c.in_flight = 0
    assert domain.is_done(c)
    assert domain.complete_campaign(c, {"completed": 2, "failed": 1}, "busy") == [CampaignChanged(c)]
    assert (c.status, c.status_reason) == ("completed", None)
    assert not domain.is_done(c)  # announced once


def test_a_campaign_that_reached_nobody_completes_with_why() -> None:
    c = campaign(total_finished=3)
    domain.complete_campaign(c, {"failed": 2, "skipped_dnc": 1}, "403 Forbidden")
    assert c.status == "completed"
    assert (
        c.status_reason == "No recipient was reached: 2 failed, 1 skipped_dnc; first failure: 403 Forbidden"
    )


@pytest.mark.parametrize("status", ["cancelled", "failed"])
def test_an_ended_campaign_keeps_its_status(status: str) -> None:
    c = campaign(status=status, total_finished=3)
    assert not domain.is_done(c)
    with pytest.raises(domain.InvalidTransition):
        domain.start_campaign(c)
    with pytest.raises(domain.InvalidTransition):
        domain.pause_campaign(c, "why")
    assert c.status == status


def test_a_campaign_not_staged_is_not_done() -> None:
    assert not domain.is_done(campaign(ready=False, total_scheduled=0))


def test_resume_runs_a_due_campaign_with_a_fresh_failure_window_and_waits_for_one_not_due() -> None:
    c = campaign(status="paused", status_reason="Auto-paused", recent_outcomes="FFF")
    assert domain.resume_campaign(c, NOW) == [CampaignChanged(c)]
    assert (c.status, c.status_reason, c.recent_outcomes) == ("running", None, "")
    later = campaign(status="paused", scheduled_time_unix=int(NOW.timestamp()) + 60)
    domain.resume_campaign(later, NOW)
    assert later.status == "pending"
    running = campaign(recent_outcomes="FF")
    assert domain.resume_campaign(running, NOW) == [CampaignChanged(running)]  # announced, unchanged
    assert (running.status, running.recent_outcomes) == ("running", "FF")


def test_cancel_counts_the_closed_recipients_only_once_staged() -> None:
    staged, early = campaign(total_finished=1), campaign(ready=False, status="pending")
    domain.cancel_campaign(staged, 2)
    domain.cancel_campaign(early, 2)
    assert (staged.status, staged.total_finished) == ("cancelled", 3)
    assert (early.status, early.total_finished) == ("cancelled", 0)
    with pytest.raises(domain.InvalidTransition):
        domain.cancel_campaign(staged, 0)


def test_fail_keeps_the_reason_and_counts_the_closed_recipients() -> None:
    c = campaign(status="paused")
    assert domain.fail_campaign(c, "Telephony refused every dial", 2) == [CampaignChanged(c)]
    assert (c.status, c.status_reason, c.total_finished) == ("failed", "Telephony refused every dial", 2)


def test_auto_pause_only_pauses_a_running_campaign_over_the_ratio() -> None:
    c = campaign()
    for _ in range(3):
        domain.record_outcome(c, "failed", 4)
    assert domain.auto_pause_if_failing(c, 4, 0.5) == []  # the window is not full yet
    domain.record_outcome(c, "completed", 4)
    changes = domain.auto_pause_if_failing(c, 4, 0.5)
    assert changes == [CampaignChanged(c)]
    assert (c.status, c.status_reason) == ("paused", "Auto-paused: more than 50% of the last 4 calls failed")
    assert domain.auto_pause_if_failing(c, 4, 0.5) == []  # already paused: not again


def test_the_transition_tables_cover_every_status_and_end_nowhere_unknown() -> None:
    campaign_statuses = {v for k, v in vars(CampaignStatus).items() if k.isupper()}
    assert set(domain.CAMPAIGN_TRANSITIONS) == campaign_statuses
    assert all(to <= campaign_statuses for to in domain.CAMPAIGN_TRANSITIONS.values())
    assert all(not domain.CAMPAIGN_TRANSITIONS[s] for s in domain.FINAL_CAMPAIGN_STATUSES)
    recipient_statuses = set(domain.RECIPIENT_TRANSITIONS)
    assert recipient_statuses >= domain.FINAL_RECIPIENT_STATUSES | {"scheduled", "dialing", "in_progress"}
    assert all(to <= recipient_statuses for to in domain.RECIPIENT_TRANSITIONS.values())


# ---- what a scheduler pass has to do ------------------------------------------------------------


def test_a_pass_dispatches_only_running_campaigns_with_a_free_slot() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    before = now - timedelta(seconds=1)
    rows = [
        campaign(campaign_id="due", status=CampaignStatus.PENDING, scheduled_time_unix=int(now.timestamp())),
        campaign(
            campaign_id="later", status=CampaignStatus.PENDING, scheduled_time_unix=int(now.timestamp()) + 60
        ),
        campaign(campaign_id="staging", status=CampaignStatus.PENDING, ready=False),
        campaign(campaign_id="free", concurrency_limit=2, in_flight=1),
        campaign(campaign_id="full", concurrency_limit=2, in_flight=2),
        campaign(campaign_id="throttled", concurrency_limit=5, throttle=1.5, in_flight=1),
        campaign(campaign_id="default", concurrency_limit=None, in_flight=2),  # default limit 3
        campaign(
            campaign_id="owed", status=CampaignStatus.PAUSED, progress_dirty=True, last_emitted_at=before
        ),
        campaign(campaign_id="recent", progress_dirty=True, last_emitted_at=now, in_flight=9),
    ]
    plan = domain.plan_tick(rows, int(now.timestamp()), before, default_limit=3)
    assert plan.to_start == ["due"]
    assert plan.running == ["free", "full", "throttled", "default", "recent"]
    assert plan.to_dispatch == ["free", "default"]  # full, throttled to 1, and over the default: not
    assert plan.progress_due == ["owed"]  # recent: a snapshot went out within the interval
