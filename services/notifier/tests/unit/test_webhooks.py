"""Webhook rules: signing, retry schedule, disable streak, which bus events become which webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from contracts.campaigns import (
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignSnapshot,
    CampaignUpdated,
    ClosedRecipient,
    StagedRecipient,
)
from contracts.telephony import CallStatusChanged
from notifier import webhooks
from notifier.webhooks import DisableRule, RetryPolicy

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
SECRET = "whsec_test_secret"


# ---- signing ---------------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_raw_body() -> None:
    body = b'{"id":"evt_1","type":"call.finished"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.signature_header(SECRET, 1700000000, body) == f"t=1700000000,v1={expected}"


def test_a_receiver_accepts_the_header_within_tolerance_only() -> None:
    body = b'{"a":1}'
    header = webhooks.signature_header(SECRET, 1700000000, body)
    assert webhooks.verify_signature(SECRET, header, body, now=1700000000 + 300)
    assert not webhooks.verify_signature(SECRET, header, body, now=1700000000 + 301)
    assert not webhooks.verify_signature(SECRET, header, body, now=1700000000 - 301)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b + b" "),  # re-serialised body
        lambda h, b: (h.replace("t=1700000000", "t=1700000001"), b),  # another timestamp
        lambda h, b: (h.replace("v1=", "v0="), b),  # another scheme
        lambda h, b: ("v1=" + h.split("v1=")[1], b),  # no timestamp
    ],
)
def test_a_receiver_refuses_anything_changed(tamper: object) -> None:
    body = b'{"a":1}'
    header, sent = tamper(webhooks.signature_header(SECRET, 1700000000, body), body)  # type: ignore[operator]
    assert not webhooks.verify_signature(SECRET, header, sent, now=1700000000)
    assert not webhooks.verify_signature(
        "whsec_other", webhooks.signature_header(SECRET, 1, body), body, now=1
    )


def test_several_v1_values_verify_when_one_matches() -> None:
    body = b"{}"
    header = webhooks.signature_header(SECRET, 5, body) + ",v1=" + "0" * 64
    assert webhooks.verify_signature(SECRET, header, body, now=5)


# ---- retries ---------------------------------------------------------------------------------------

POLICY = RetryPolicy(base_s=30, max_s=3600, window_s=86400)


def test_backoff_doubles_with_jitter_in_the_upper_half() -> None:
    for attempt, full in [(1, 30), (2, 60), (3, 120), (8, 3600), (20, 3600), (500, 3600)]:
        assert POLICY.delay_s(attempt, None, lambda: 0.0) == full / 2
        assert full / 2 < POLICY.delay_s(attempt, None, lambda: 0.999) < full


def test_retry_after_lengthens_the_delay_up_to_the_cap() -> None:
    assert POLICY.delay_s(1, 600, lambda: 0.5) == 600
    assert POLICY.delay_s(1, 10**6, lambda: 0.5) == 3600
    assert POLICY.delay_s(3, 1, lambda: 0.0) == 60  # a shorter Retry-After does not hurry us


def test_retries_stop_at_the_window() -> None:
    until = NOW + timedelta(seconds=100)
    assert POLICY.next_attempt_at(1, NOW, until, None, lambda: 0.0) == NOW + timedelta(seconds=15)
    assert POLICY.next_attempt_at(3, NOW, until, None, lambda: 0.0) == NOW + timedelta(seconds=60)
    assert POLICY.next_attempt_at(4, NOW, until, None, lambda: 0.0) is None  # 120 s > 100 s left


def test_the_default_schedule_lasts_a_day() -> None:
    """30 to 55 attempts over 24 h (the README's figure), whatever the jitter."""
    for draw in (0.0, 0.999):
        at, until, attempts = NOW, NOW + timedelta(seconds=POLICY.window_s), 1
        while (next_at := POLICY.next_attempt_at(attempts, at, until, None, lambda d=draw: d)) is not None:
            at, attempts = next_at, attempts + 1
        assert 30 <= attempts <= 55
        assert until - at < timedelta(hours=1)


# ---- disabling -------------------------------------------------------------------------------------

RULE = DisableRule(failures=10, after_s=12 * 3600)


def test_disabled_only_after_enough_failures_over_enough_time() -> None:
    long_ago = NOW - timedelta(hours=12)
    assert RULE.should_disable(10, long_ago, NOW)
    assert not RULE.should_disable(9, long_ago, NOW)  # a long, quiet outage: too few failures
    assert not RULE.should_disable(500, NOW - timedelta(hours=11, minutes=59), NOW)  # a short, busy one
    assert not RULE.should_disable(10, None, NOW)  # no streak
    assert "10 or more consecutive failed attempts over 12 h" in RULE.reason()


@pytest.mark.parametrize(
    ("after_s", "said"),
    [(43_200, "12 h"), (5_400, "1.5 h"), (3_600, "1 h"), (600, "10 min"), (90, "1.5 min"), (10, "10 s")],
)
def test_the_disable_reason_says_its_window_in_the_unit_people_use(after_s: float, said: str) -> None:
    """A short window read "over 0.00277778 h"."""
    assert DisableRule(failures=4, after_s=after_s).reason() == (
        f"4 or more consecutive failed attempts over {said} with no success"
    )


# ---- bus events → webhook events -------------------------------------------------------------------


def _call(status: str, message_id: str = "m1") -> CallStatusChanged:
    return CallStatusChanged(
        message_id=message_id,
        occurred_at=NOW,
        conversation_id="conv_1",
        status=status,  # type: ignore[arg-type]
        duration_seconds=42,
        outcome="appointment_confirmed",
        to_number="+14155550100",
        agent_id="agent_1",
        phone_number_id="phnum_1",
        started_at_unix=1700000000,
        ended_at_unix=1700000042,
        campaign_id="batch_1",
        recipient_id="r1",
        attempt=1,
    )


def test_a_final_call_is_call_finished_with_what_a_receiver_needs() -> None:
    [event] = webhooks.webhook_events(_call("completed"))
    body = json.loads(event.body)
    assert body["type"] == event.event_type == "call.finished"
    assert body["id"] == event.event_id and body["occurred_at_unix"] == int(NOW.timestamp())
    assert body["data"] | {} == {
        "conversation_id": "conv_1",
        "status": "completed",
        "to_number": "+14155550100",
        "agent_id": "agent_1",
        "phone_number_id": "phnum_1",
        "duration_seconds": 42,
        "outcome": "appointment_confirmed",
        "summary": None,
        "reason": None,
        "started_at_unix": 1700000000,
        "ended_at_unix": 1700000042,
        "campaign_id": "batch_1",
        "recipient_id": "r1",
        "attempt": 1,
    }
    assert webhooks.webhook_events(_call("in_progress")) == []


def test_event_ids_are_stable_for_the_same_fact() -> None:
    [a] = webhooks.webhook_events(_call("completed", "m1"))
    [b] = webhooks.webhook_events(_call("completed", "m2"))  # the same call told twice
    assert a.event_id == b.event_id
    assert webhooks.delivery_id("whk_1", a.event_id) == webhooks.delivery_id("whk_1", b.event_id)
    assert webhooks.delivery_id("whk_1", a.event_id) != webhooks.delivery_id("whk_2", a.event_id)


def _recipient(status: str, next_at: int | None = None) -> CampaignRecipientUpdated:
    return CampaignRecipientUpdated(
        campaign_id="batch_1",
        recipient_id="r1",
        position=0,
        to_number="+14155550100",
        status=status,  # type: ignore[arg-type]
        retry_count=1,
        next_attempt_at_unix=next_at,
    )


def test_a_recipient_is_finished_only_in_a_final_status() -> None:
    [event] = webhooks.webhook_events(_recipient("no_answer"))
    data = json.loads(event.body)["data"]
    assert event.event_type == "campaign.recipient.finished"
    assert (data["campaign_id"], data["recipient_id"], data["to_number"], data["status"]) == (
        "batch_1",
        "r1",
        "+14155550100",
        "no_answer",
    )
    assert webhooks.webhook_events(_recipient("scheduled", next_at=1700000300)) == []  # a retry comes
    assert webhooks.webhook_events(_recipient("dialing")) == []


def test_what_a_callee_asked_for_after_their_call_is_news_with_an_id_of_its_own() -> None:
    [finished] = webhooks.webhook_events(_recipient("completed"))
    [opted_out] = webhooks.webhook_events(_recipient("opted_out"))
    [again] = webhooks.webhook_events(_recipient("opted_out"))
    called_back = _recipient("completed").model_copy(update={"callback_at_unix": 1700003600})
    [after_callback] = webhooks.webhook_events(called_back)
    assert json.loads(opted_out.body)["data"]["status"] == "opted_out"
    assert opted_out.event_id == again.event_id  # the same fact twice: one id
    assert len({finished.event_id, opted_out.event_id, after_callback.event_id}) == 3


def test_each_recipient_closed_in_bulk_is_finished_with_the_id_of_the_same_fact() -> None:
    closed = CampaignRecipientsClosed(
        campaign_id="batch_1",
        status="cancelled",
        reason="Campaign cancelled",
        part_index=0,
        part_count=1,
        recipients=[
            ClosedRecipient(recipient_id="r1", position=0, to_number="+14155550100", retry_count=1),
            ClosedRecipient(recipient_id="r2", position=1, to_number="+14155550101"),
        ],
    )
    events = webhooks.webhook_events(closed)
    assert [e.event_type for e in events] == ["campaign.recipient.finished"] * 2
    first = json.loads(events[0].body)["data"]
    assert first == json.loads(webhooks.webhook_events(_recipient("cancelled"))[0].body)["data"] | {
        "reason": "Campaign cancelled"
    }
    # Announced one by one or in bulk, the same recipient's end is one event id: one delivery.
    [one_by_one] = webhooks.webhook_events(_recipient("cancelled"))
    assert events[0].event_id == one_by_one.event_id
    assert events[1].event_id != events[0].event_id


def test_only_recipients_staged_already_final_are_finished() -> None:
    staged = CampaignRecipientsStaged(
        campaign_id="batch_1",
        part_index=0,
        part_count=1,
        recipients=[
            StagedRecipient(recipient_id="r1", position=0, to_number="+14155550100", status="scheduled"),
            StagedRecipient(recipient_id="r2", position=1, to_number="12", status="failed", reason="Invalid"),
        ],
    )
    [event] = webhooks.webhook_events(staged)
    data = json.loads(event.body)["data"]
    assert (data["recipient_id"], data["status"], data["reason"]) == ("r2", "failed", "Invalid")


def _campaign(status: str) -> CampaignUpdated:
    snapshot = CampaignSnapshot(
        campaign_id="batch_1",
        name="Reminders",
        agent_id="agent_1",
        phone_number_id="phnum_1",
        status=status,  # type: ignore[arg-type]
        created_at_unix=1700000000,
        retry_count=0,
        total_calls_scheduled=4,
        total_calls_dispatched=4,
        total_calls_finished=4,
        last_updated_at_unix=1700000100,
    )
    return CampaignUpdated(campaign=snapshot)


def test_campaign_status_changes_and_its_end() -> None:
    assert webhooks.webhook_events(_campaign("running"), "running") == []  # progress only
    [changed] = webhooks.webhook_events(_campaign("paused"), "running")
    assert changed.event_type == "campaign.status_changed"
    data = json.loads(changed.body)["data"]
    assert (data["campaign_id"], data["status"], data["previous_status"]) == ("batch_1", "paused", "running")
    changed, finished = webhooks.webhook_events(_campaign("completed"), "running")
    assert (changed.event_type, finished.event_type) == ("campaign.status_changed", "campaign.finished")
    assert json.loads(finished.body)["data"]["status"] == "completed"
    [first] = webhooks.webhook_events(_campaign("running"), None)  # first seen
    assert json.loads(first.body)["data"]["previous_status"] is None


def test_excerpt_is_short_text() -> None:
    assert webhooks.excerpt(b"x" * 10_000) == "x" * 500
    assert webhooks.excerpt(b"\xff ok") == "\ufffd ok"
