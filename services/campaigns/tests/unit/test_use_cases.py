"""Use cases through `bootstrap.make_deps` on a fake unit of work (tests/unit/fakes.py): what each
changes and announces, in one transaction, and what a redelivered message changes (nothing). The
real database and broker are the integration suite's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet

from campaigns import bootstrap, control, domain, outcomes
from campaigns.context import Deps
from campaigns.domain import AttemptStatus, CampaignStatus, RecipientStatus
from campaigns.models import Attempt, Campaign, Recipient
from campaigns.settings import Settings
from contracts.campaigns import AddDoNotCall, CancelCampaign, PauseCampaign, ResumeCampaign, RetryDelays
from contracts.telephony import CallDialFailed, CallPlaced, CallStatusChanged

from .fakes import FakeUnitOfWork, Store

CID = "camp-1"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # every use case reads this clock


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def deps(store: Store) -> Deps:
    settings = Settings.model_validate(
        {
            "SWITCHBOARD_SECRET_KEY": Fernet.generate_key().decode(),
            "CAMPAIGNS_FAILURE_WINDOW": 2,
            "CAMPAIGNS_FAILURE_PAUSE_RATIO": 0.5,
            "CAMPAIGNS_RATE_LIMIT_BACKOFF_S": 30,
        }
    )
    return bootstrap.make_deps(settings, lambda: FakeUnitOfWork(store), clock=lambda: NOW)


def seed(store: Store, recipients: int = 2, **values: Any) -> Campaign:
    """A staged, running campaign of `recipients` waiting recipients (r0, r1, ...)."""
    fields: dict[str, Any] = {
        "campaign_id": CID,
        "name": "Spring",
        "agent_id": "agent",
        "phone_number_id": "pn",
        "phone_provider": "twilio",
        "status": CampaignStatus.RUNNING,
        "status_reason": None,
        "created_at_unix": 0,
        "scheduled_time_unix": None,
        "timezone": None,
        "retry_count": 1,
        "retry_delays": RetryDelays().model_dump(),
        "concurrency_limit": None,
        "recipient_chunks": 1,
        "ready": True,
        "total_scheduled": recipients,
        "total_dispatched": 0,
        "total_finished": 0,
        "in_flight": 0,
        "throttle": None,
        "throttled_at": None,
        "recent_outcomes": "",
        "dials_accepted": 0,
        "fatal_dial_failures": 0,
        "configuration_refusals": 0,
        "analysis_rules": None,
        "max_total_minutes": None,
        "call_seconds": 0,
        "longest_call_s": 0,
        "progress_dirty": False,
        "phone_number_daily_caps": None,
        "correlation_id": "corr",
    }
    campaign = Campaign(**(fields | values))
    store.campaigns[CID] = campaign
    for i in range(recipients):
        store.recipients[i + 1] = Recipient(
            id=i + 1,
            campaign_id=CID,
            position=i,
            recipient_id=f"r{i}",
            phone_number=f"+1415555012{i}",
            time_zones=["America/Los_Angeles"],
            status=RecipientStatus.SCHEDULED,
            reason=None,
            retries=0,
            attempts=0,
            dispatched=False,
            next_attempt_at=None,
            waiting_reason=None,
            conversation_id=None,
            duration_seconds=None,
            outcome=None,
            opted_out=False,
            callback_at=None,
            callback_requested=None,
            callback_pending=False,
        )
    return campaign


def dialling(store: Store, pk: int) -> Recipient:
    """Recipient `pk` with its attempt 1 in flight (as the scheduler leaves it)."""
    recipient = store.recipients[pk]
    campaign = store.campaigns[recipient.campaign_id]
    domain.start_attempt(campaign, recipient, 1)
    assert recipient.recipient_id is not None
    message_id = domain.attempt_message_id(CID, recipient.recipient_id, 1)
    store.attempts[message_id] = Attempt(
        message_id=message_id,
        campaign_id=CID,
        recipient_id=recipient.recipient_id,
        attempt=1,
        recipient_pk=pk,
        to_number=recipient.phone_number,
        phone_number_id="pn",
        status=AttemptStatus.DIALING,
        conversation_id=None,
        call_status=None,
        reason=None,
        dialed_at=datetime(2026, 11, 30, tzinfo=UTC),
        finished_at=None,
    )
    return recipient


def ended(recipient: Recipient, status: str, **fields: Any) -> CallStatusChanged:
    return CallStatusChanged(
        conversation_id="conv-1",
        status=status,
        campaign_id=CID,
        recipient_id=recipient.recipient_id,
        attempt=recipient.attempts,
        **fields,
    )


def types(store: Store) -> list[str]:
    return [e.type for e in store.events()]


# ---- control ------------------------------------------------------------------------------------


async def test_cancel_closes_the_waiting_recipients_and_announces_them_with_the_campaign(
    deps: Deps, store: Store
) -> None:
    campaign = seed(store, recipients=3)
    dialling(store, 1)
    await control.cancel(deps, CancelCampaign(campaign_id=CID))

    assert (campaign.status, campaign.total_finished) == ("cancelled", 2)
    assert [r.status for r in store.recipients.values()] == ["dialing", "cancelled", "cancelled"]
    assert types(store) == ["campaign.recipients_closed", "campaign.updated"]
    closed = store.events("campaign.recipients_closed")[0]
    assert [r.recipient_id for r in closed.recipients] == ["r1", "r2"]
    assert store.events("campaign.updated")[0].campaign.status == "cancelled"


async def test_a_redelivered_command_changes_nothing(deps: Deps, store: Store) -> None:
    campaign = seed(store)
    command = PauseCampaign(campaign_id=CID)
    await control.pause(deps, command)
    await control.resume(deps, ResumeCampaign(campaign_id=CID))
    await control.pause(deps, command)  # the same message again (at-least-once)
    assert campaign.status == "running"
    assert len(store.events("campaign.updated")) == 2


async def test_control_of_an_unknown_or_ended_campaign_is_answered_command_failed(
    deps: Deps, store: Store
) -> None:
    await control.pause(deps, PauseCampaign(campaign_id="nope"))
    seed(store, status=CampaignStatus.COMPLETED)
    await control.cancel(deps, CancelCampaign(campaign_id=CID))
    await control.resume(deps, ResumeCampaign(campaign_id=CID))
    answers = [(e.command_type, e.status_code) for e in store.events("command.failed")]
    assert answers == [("campaign.pause", 404), ("campaign.cancel", 409), ("campaign.resume", 409)]
    assert store.campaigns[CID].status == "completed"


async def test_pause_then_resume_runs_again_with_a_fresh_failure_window(deps: Deps, store: Store) -> None:
    campaign = seed(store, recent_outcomes="FF")
    await control.pause(deps, PauseCampaign(campaign_id=CID))
    assert (campaign.status, campaign.status_reason) == ("paused", "Paused on request")
    await control.resume(deps, ResumeCampaign(campaign_id=CID))
    assert (campaign.status, campaign.status_reason, campaign.recent_outcomes) == ("running", None, "")
    assert deps.wake.is_set()  # the scheduler dials at once, not a tick later


# ---- outcomes -----------------------------------------------------------------------------------


async def test_the_last_outcome_finishes_the_recipient_then_completes_the_campaign(
    deps: Deps, store: Store
) -> None:
    campaign = seed(store, recipients=1)
    recipient = dialling(store, 1)
    await outcomes.call_placed(
        deps,
        CallPlaced(
            conversation_id="conv-1",
            provider="twilio",
            agent_id="agent",
            phone_number_id="pn",
            to_number=recipient.phone_number,
            campaign_id=CID,
            recipient_id="r0",
            attempt=1,
            placed_at_unix=0,
        ),
    )
    assert (recipient.status, recipient.conversation_id) == ("in_progress", "conv-1")
    await outcomes.call_status_changed(deps, ended(recipient, "completed", duration_seconds=42))

    assert (recipient.status, recipient.duration_seconds, recipient.next_attempt_at) == (
        "completed",
        42,
        None,
    )
    assert (campaign.total_finished, campaign.in_flight, campaign.status) == (1, 0, "completed")
    assert campaign.status_reason is None  # somebody was reached
    assert types(store) == ["campaign.recipient_updated", "campaign.recipient_updated", "campaign.updated"]
    assert [e.status for e in store.events("campaign.recipient_updated")] == ["in_progress", "completed"]
    attempt = next(iter(store.attempts.values()))
    assert (attempt.status, attempt.call_status) == ("ended", "completed")


async def test_a_retryable_outcome_schedules_a_retry_and_finishes_when_none_is_left(
    deps: Deps, store: Store
) -> None:
    campaign = seed(store, recipients=1)
    recipient = dialling(store, 1)
    await outcomes.call_status_changed(deps, ended(recipient, "no_answer"))
    assert (recipient.status, recipient.retries, campaign.total_finished) == ("scheduled", 1, 0)
    assert recipient.next_attempt_at == NOW + timedelta(seconds=RetryDelays().no_answer)
    assert campaign.status == "running"

    recipient.next_attempt_at = None
    dialling_again = store.recipients[1]
    domain.start_attempt(campaign, dialling_again, 2)
    attempt = next(iter(store.attempts.values()))
    store.attempts["second"] = Attempt(
        **{c: getattr(attempt, c) for c in ("campaign_id", "recipient_id", "recipient_pk", "to_number")},
        message_id="second",
        attempt=2,
        phone_number_id="pn",
        status=AttemptStatus.DIALING,
        dialed_at=attempt.dialed_at,
    )
    await outcomes.call_status_changed(deps, ended(recipient, "no_answer"))
    assert (recipient.status, recipient.retries, campaign.total_finished) == ("no_answer", 1, 1)
    assert campaign.status == "completed"
    assert campaign.status_reason == "No recipient was reached: 1 no_answer"


async def test_a_redelivered_or_late_outcome_changes_nothing(deps: Deps, store: Store) -> None:
    campaign = seed(store, recipients=2)
    recipient = dialling(store, 1)
    event = ended(recipient, "completed")
    await outcomes.call_status_changed(deps, event)
    await outcomes.call_status_changed(deps, event)  # redelivered
    await outcomes.call_status_changed(deps, ended(recipient, "failed"))  # late, its attempt ended
    assert (recipient.status, campaign.total_finished) == ("completed", 1)
    assert len(store.events("campaign.recipient_updated")) == 1


async def test_an_upstream_429_puts_the_recipient_back_to_wait_without_using_a_retry(
    deps: Deps, store: Store
) -> None:
    campaign = seed(store, recipients=2)
    recipient = dialling(store, 1)
    await outcomes.call_dial_failed(deps, _dial_failed(recipient, 429))
    assert (recipient.status, recipient.retries, campaign.in_flight, campaign.total_finished) == (
        "scheduled",
        0,
        0,
        0,
    )
    assert recipient.next_attempt_at == NOW + timedelta(seconds=30)  # CAMPAIGNS_RATE_LIMIT_BACKOFF_S
    assert campaign.throttle is not None  # dialling slows down
    assert next(iter(store.attempts.values())).status == "rate_limited"


async def test_a_429_after_a_cancel_closes_the_recipient_as_cancelled(deps: Deps, store: Store) -> None:
    campaign = seed(store, recipients=2)
    recipient = dialling(store, 1)
    await control.cancel(deps, CancelCampaign(campaign_id=CID))
    await outcomes.call_dial_failed(deps, _dial_failed(recipient, 429))
    assert (recipient.status, recipient.reason) == ("cancelled", "Campaign cancelled")
    assert (campaign.total_finished, campaign.in_flight, campaign.status) == (2, 0, "cancelled")


async def test_refused_dials_from_the_start_fail_the_campaign_and_close_its_recipients(
    deps: Deps, store: Store
) -> None:
    campaign = seed(store, recipients=4)
    for pk in (1, 2, 3):
        await outcomes.call_dial_failed(deps, _dial_failed(dialling(store, pk), 404))
    assert campaign.status == "failed"
    assert campaign.status_reason == "Telephony refused every dial: 404 Agent not found"
    assert store.recipients[4].status == "failed" and campaign.total_finished == 4
    assert types(store)[-2:] == ["campaign.recipients_closed", "campaign.updated"]


async def test_failing_calls_auto_pause_a_running_campaign(deps: Deps, store: Store) -> None:
    campaign = seed(store, recipients=3, retry_count=0)
    for pk in (1, 2):
        await outcomes.call_status_changed(deps, ended(dialling(store, pk), "failed"))
    assert campaign.status == "paused"
    assert campaign.status_reason == "Auto-paused: more than 50% of the last 2 calls failed"


# ---- opt-out ------------------------------------------------------------------------------------


async def test_an_opt_out_ends_a_waiting_recipient_at_once_and_one_in_flight_with_its_call(
    deps: Deps, store: Store
) -> None:
    campaign = seed(store, recipients=2)
    in_flight = dialling(store, 1)
    waiting = store.recipients[2]
    for recipient in (waiting, in_flight):
        await control.add_do_not_call(
            deps,
            AddDoNotCall(
                phone_number=recipient.phone_number, campaign_id=CID, recipient_id=recipient.recipient_id
            ),
        )
    assert (waiting.status, waiting.reason, campaign.total_finished) == (
        "opted_out",
        "Opted out during the call",
        1,
    )
    assert (in_flight.status, in_flight.opted_out) == ("dialing", True)
    await outcomes.call_status_changed(deps, ended(in_flight, "completed"))
    assert (in_flight.status, campaign.total_finished, campaign.status) == ("opted_out", 2, "completed")
    assert campaign.status_reason is None  # opted out: somebody answered
    assert set(store.do_not_call) == {waiting.phone_number, in_flight.phone_number}


def _dial_failed(recipient: Recipient, status_code: int) -> CallDialFailed:
    return CallDialFailed(
        provider="twilio",
        agent_id="agent",
        phone_number_id="pn",
        to_number=recipient.phone_number,
        status_code=status_code,
        error="Agent not found" if status_code == 404 else "Too many requests",
        campaign_id=CID,
        recipient_id=recipient.recipient_id,
        attempt=recipient.attempts,
    )
