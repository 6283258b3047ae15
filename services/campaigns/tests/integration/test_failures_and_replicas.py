"""Auto-pause, campaigns that cannot run, two replicas sharing the work, and the app."""

from __future__ import annotations

import uuid

import httpx
import pytest

from campaigns.app import create_app
from campaigns.bootstrap import bootstrap
from contracts.campaigns import CampaignRecipient, SubmitCampaign

from .conftest import Harness, new_number

pytestmark = pytest.mark.integration


def _submit(harness: Harness, numbers: list[str], **fields: object) -> SubmitCampaign:
    values: dict[str, object] = {
        "campaign_id": f"batch_{uuid.uuid4().hex[:12]}",
        "call_name": "Test campaign",
        "agent_id": harness.agent_id,
        "phone_number_id": harness.phone_number_id,
        "phone_provider": "twilio",
        "recipients": [CampaignRecipient(phone_number=n) for n in numbers],
    } | fields
    return SubmitCampaign.model_validate(values)


async def test_mostly_failing_campaign_is_auto_paused(harness: Harness) -> None:
    numbers = [new_number("8") for _ in range(14)]
    command = _submit(harness, numbers, concurrency_limit=2)
    await harness.publish(command, key=command.campaign_id)
    paused = await harness.wait_status(command.campaign_id, "paused")
    assert paused["status_reason"] and "Auto-paused" in paused["status_reason"]
    # the in-flight ones finish; nothing new is dialled
    await harness.dispatches_nothing_more(command.campaign_id, paused["total_calls_dispatched"])
    stats = await harness.stats()
    assert 10 <= stats["total_dials"] < 14
    assert all(c == 1 for c in stats["dials_by_number"].values())


async def test_campaign_fails_when_telephony_refuses_every_dial(harness: Harness) -> None:
    numbers = [new_number("1") for _ in range(6)]
    command = _submit(harness, numbers, agent_id="agent_that_does_not_exist", concurrency_limit=1)
    await harness.publish(command, key=command.campaign_id)
    failed = await harness.wait_status(command.campaign_id, "failed")
    assert failed["status_reason"] and "refused every dial" in failed["status_reason"]
    assert failed["total_calls_finished"] == 6 and failed["total_calls_dispatched"] == 3
    assert (await harness.stats())["total_dials"] == 0


async def test_two_replicas_never_dial_the_same_recipient(harness: Harness) -> None:
    second = bootstrap(harness.container.settings)
    await second.start()
    stopped = False
    try:
        numbers = [new_number(str(i % 5)) for i in range(20)]
        command = _submit(harness, numbers, concurrency_limit=4)
        await harness.publish(command, key=command.campaign_id)
        await harness.wait_for(
            lambda e: (
                e.get("type") == "campaign.recipient_updated"
                and e["campaign_id"] == command.campaign_id
                and e["status"] == "completed"
            ),
            what="a first completed call",
        )
        # One replica goes away mid-campaign (its partitions move to the other): nothing is lost
        # and nobody is dialled twice.
        await second.stop()
        stopped = True
        done = await harness.wait_status(command.campaign_id, "completed", deadline_s=60)
        assert done["total_calls_finished"] == 20 and done["total_calls_dispatched"] == 20
        stats = await harness.stats()
        dials = {n: stats["dials_by_number"].get(n, 0) for n in numbers}
        assert dials == dict.fromkeys(numbers, 1), harness.states(command.campaign_id)
        assert stats["max_concurrent_observed"] <= 4
    finally:
        if not stopped:
            await second.stop()


async def test_health_and_metrics(harness: Harness) -> None:
    app = create_app(harness.container, migrate=False)  # lifespan not run: the container is live
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://campaigns"
    ) as client:
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        ready = await client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"kafka": True, "database": True}
        metrics = (await client.get("/metrics")).text
        assert "switchboard_campaigns_running" in metrics
        assert "switchboard_campaign_attempts_dispatched_total" in metrics


AUTHENTICATE = "HTTP 401 error: Unable to create record: Authenticate"


async def test_configuration_refusals_fail_the_campaign_after_three(harness: Harness) -> None:
    """Bad Twilio credentials: every dial is refused alike. Three refusals in a row fail the
    campaign with the carrier's message (before: each recipient retried, ~20 refusals, then a pause)."""
    await harness.configure(dial_refusals={harness.phone_number_id: AUTHENTICATE})
    numbers = [new_number("1") for _ in range(12)]
    command = _submit(harness, numbers, concurrency_limit=1, retry_count=2)
    await harness.publish(command, key=command.campaign_id)
    failed = await harness.wait_status(command.campaign_id, "failed")
    assert failed["status_reason"] and AUTHENTICATE in failed["status_reason"]
    assert failed["total_calls_finished"] == 12
    stats = await harness.stats()
    assert stats["carrier_refused"] == 3 and stats["total_dials"] == 0


async def test_configuration_refusals_that_are_not_in_a_row_do_not_fail_it(harness: Harness) -> None:
    # SIP 403 Forbidden (our trunk's configuration) from the carrier, after ringing; answered calls between.
    refused = [new_number("1") for _ in range(4)]
    answered = [new_number("1") for _ in range(2)]
    numbers = [refused[0], refused[1], answered[0], refused[2], refused[3], answered[1]]
    await harness.configure(carrier_answers={n: {"sip_status_code": 403} for n in refused})
    command = _submit(harness, numbers, concurrency_limit=1, retry_count=2)
    await harness.publish(command, key=command.campaign_id)
    done = await harness.wait_status(command.campaign_id, "completed", deadline_s=60)
    assert done["total_calls_finished"] == 6
    stats = await harness.stats()
    assert [stats["dials_by_number"][n] for n in numbers] == [1] * 6, numbers  # a refusal is not retried


async def test_the_carriers_answer_decides_busy_retry_or_final_failure(harness: Harness) -> None:
    busy, gone = new_number("1"), new_number("1")
    # The example: failure_reason "unknown" with SIP 486 Busy Here is busy (retried with the
    # busy delay), SIP 404 is a number that cannot be called (failed once, not retried).
    await harness.configure(carrier_answers={busy: {"sip_status_code": 486}, gone: {"sip_status_code": 404}})
    command = _submit(harness, [busy, gone], retry_count=1)
    await harness.publish(command, key=command.campaign_id)
    await harness.wait_status(command.campaign_id, "completed", deadline_s=60)
    stats = await harness.stats()
    assert (stats["dials_by_number"][busy], stats["dials_by_number"][gone]) == (2, 1)
    finals = {
        e["to_number"]: e["status"]
        for e in harness.events
        if e.get("type") == "campaign.recipient_updated" and e["campaign_id"] == command.campaign_id
    }
    assert finals == {busy: "busy", gone: "failed"}
