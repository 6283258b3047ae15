"""Signed webhooks over the whole stack (issue 13): a webhook created through the REST API, a real
call and a campaign, a receiver that fails first (503, then no answer) and then answers 200, the
notifier SIGKILLed mid-retry, the signature verified as the README's receiver does, the attempts
and answers listed, a delivery re-sent by hand."""

from __future__ import annotations

import hashlib
import hmac
import signal
import time
import uuid
from typing import Any

import httpx
import pytest

from devinfra.numbers import outcome_number
from devinfra.stack import Stack
from devinfra.standins.webhook_receiver import HANG, Receiver
from tests.e2e.conftest import poll


def verify(secret: str, header: str, raw_body: bytes, tolerance_s: int = 300) -> bool:
    """The README's receiver example, as written there."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp, signature = parts["t"], parts["v1"]
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@pytest.fixture(scope="module")
def line(api: httpx.Client) -> dict[str, str]:
    agent = api.post("/api/v1/agents", json={"name": "Webhook Agent"}).json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550177", "label": "webhooks", "sid": "AC" + "7" * 32, "token": "t"},
    ).json()["phone_number_id"]
    return {"agent_id": agent, "phone_number_id": number}


def _create(api: httpx.Client, receiver: Receiver, *types: str) -> tuple[dict[str, Any], str]:
    path = f"/hooks/{uuid.uuid4().hex}"
    response = api.post("/api/v1/webhooks", json={"url": receiver.url(path), "event_types": list(types)})
    assert response.status_code == 201, response.text
    return response.json(), path


def _deliveries(api: httpx.Client, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/webhooks/{webhook_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["deliveries"])


def test_a_call_finished_webhook_survives_failures_and_a_killed_notifier(
    api: httpx.Client, stack: Stack, webhook_receiver: Receiver, line: dict[str, str]
) -> None:
    created, path = _create(api, webhook_receiver, "call.finished")
    webhook_id, secret = created["webhook_id"], created["signing_secret"]
    assert created["status"] == "active" and secret.startswith("whsec_")
    shown = api.get(f"/api/v1/webhooks/{webhook_id}").json()
    assert "signing_secret" not in shown and shown["url"] == webhook_receiver.url(path)
    assert webhook_id in [w["webhook_id"] for w in api.get("/api/v1/webhooks").json()["webhooks"]]

    # 503 asking for 2 s, then no answer at all, then 200.
    webhook_receiver.script(path, (503, {"Retry-After": "2"}), HANG)
    call = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": line["agent_id"],
            "agent_phone_number_id": line["phone_number_id"],
            "to_number": (to := outcome_number(0)),
        },
    )
    assert call.status_code == 200, call.text
    conversation_id = call.json()["conversation_id"]

    # Kill the notifier once the first failure is recorded, while it waits to retry: the retry
    # must still happen (the queue is in the database, not in the process).
    poll(lambda: [d["attempts"] for d in _deliveries(api, webhook_id)] == [1], timeout=120)
    stack.kill("notifier", signal.SIGKILL)
    stack.restart("notifier")

    poll(lambda: any(d["status"] == "delivered" for d in _deliveries(api, webhook_id)), timeout=120)
    [delivery] = _deliveries(api, webhook_id)
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [503, None, 200], log
    assert log[1]["error"].startswith("timeout") and log[1]["duration_ms"] >= 1500
    assert '"status": 503' in log[0]["response_excerpt"]
    assert delivery["attempts"] == 3 and delivery["event_type"] == "call.finished"

    requests = webhook_receiver.at(path)
    assert len(requests) == 3
    assert len({r.body for r in requests}) == 1  # the same bytes each time
    assert all(verify(secret, r.headers["Switchboard-Signature"], r.body) for r in requests)
    assert requests[1].at - requests[0].at >= 2.0  # Retry-After honoured
    body = requests[0].json
    assert body["id"] == delivery["event_id"] == requests[0].headers["Switchboard-Event-Id"]
    data = body["data"]
    assert (data["conversation_id"], data["to_number"], data["status"]) == (conversation_id, to, "completed")
    assert data["duration_seconds"] is not None and data["outcome"] == "appointment_confirmed"

    # Re-sent by hand: the same event, one more attempt marked manual.
    resent = api.post(f"/api/v1/webhooks/{webhook_id}/deliveries/{delivery['delivery_id']}/resend")
    assert resent.status_code == 200, resent.text
    assert resent.json()["status"] == "pending"
    poll(lambda: _deliveries(api, webhook_id)[0]["attempts"] == 4, timeout=60)
    assert _deliveries(api, webhook_id)[0]["attempt_log"][-1]["manual"] is True
    assert webhook_receiver.at(path)[-1].body == requests[0].body
    missing = api.post(f"/api/v1/webhooks/{webhook_id}/deliveries/dlv_missing/resend")
    assert missing.status_code == 404 and missing.json()["success"] is False


def test_campaign_webhooks_and_the_subscription_lifecycle(
    api: httpx.Client, webhook_receiver: Receiver, line: dict[str, str]
) -> None:
    created, path = _create(
        api, webhook_receiver, "campaign.recipient.finished", "campaign.status_changed", "campaign.finished"
    )
    webhook_id, secret = created["webhook_id"], created["signing_secret"]
    numbers = [outcome_number(1), outcome_number(5)]
    job = api.post(
        "/api/v1/batch-calling/submit",
        json={"call_name": "Webhook campaign", **line, "recipients": [{"phone_number": n} for n in numbers]},
    )
    assert job.status_code == 200, job.text
    job_id = job.json()["id"]

    def types() -> list[str]:
        return [r.json["type"] for r in webhook_receiver.at(path)]

    poll(lambda: "campaign.finished" in types(), timeout=120)
    poll(lambda: types().count("campaign.recipient.finished") == 2, timeout=60)
    got = [r.json for r in webhook_receiver.at(path)]
    assert all(verify(secret, r.headers["Switchboard-Signature"], r.body) for r in webhook_receiver.at(path))
    recipients = {
        e["data"]["to_number"]: e["data"]["status"] for e in got if e["type"] == "campaign.recipient.finished"
    }
    assert recipients == {numbers[0]: "completed", numbers[1]: "busy"}
    assert all(e["data"]["campaign_id"] == job_id for e in got)
    finished = [e for e in got if e["type"] == "campaign.finished"]
    assert len(finished) == 1 and finished[0]["data"]["status"] == "completed"
    assert ("completed", "campaign.status_changed") in {(e["data"]["status"], e["type"]) for e in got}

    # Enabling an active webhook changes nothing; delete, then it is gone.
    assert api.post(f"/api/v1/webhooks/{webhook_id}/enable").json()["status"] == "active"
    deleted = api.delete(f"/api/v1/webhooks/{webhook_id}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert api.get(f"/api/v1/webhooks/{webhook_id}").status_code == 404


def test_a_private_url_not_on_the_allowlist_is_refused(api: httpx.Client) -> None:
    response = api.post(
        "/api/v1/webhooks", json={"url": "http://127.0.0.1:1/hook", "event_types": ["call.finished"]}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "Webhook URL refused"


def test_a_cancelled_campaigns_waiting_recipients_each_finish_through_events(
    api: httpx.Client, webhook_receiver: Receiver, line: dict[str, str]
) -> None:
    """Issue 16 item 4: the recipients a cancel closes in bulk are announced
    (`campaign.recipients_closed`), so the results API shows each one cancelled as soon as the
    cancel answers, and each gets its own signed `campaign.recipient.finished`, once."""
    created, path = _create(api, webhook_receiver, "campaign.recipient.finished", "campaign.finished")
    webhook_id, secret = created["webhook_id"], created["signing_secret"]
    numbers = [outcome_number(1) for _ in range(5)]
    job = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": "Cancelled campaign",
            **line,
            "scheduled_time_unix": int(time.time()) + 3600,  # staged and waiting: nobody dialled
            "recipients": [{"phone_number": n, "name": f"N{i}"} for i, n in enumerate(numbers)],
        },
    )
    assert job.status_code == 200, job.text
    job_id = job.json()["id"]
    cancelled = api.post(f"/api/v1/batch-calling/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text

    # Read your writes: the closed recipients were projected before the cancel's answer.
    calls = api.get(f"/api/v1/batch-calling/{job_id}/calls").json()["calls"]
    assert [(c["to_number"], c["status"], c["reason"], c["name"]) for c in calls] == [
        (n, "cancelled", "Campaign cancelled", f"N{i}") for i, n in enumerate(numbers)
    ]
    assert api.get(f"/api/v1/batch-calling/{job_id}").json()["total_calls_finished"] == 5

    def finished() -> list[dict[str, Any]]:
        return [r.json for r in webhook_receiver.at(path) if r.json["type"] == "campaign.recipient.finished"]

    poll(
        lambda: (
            len(finished()) >= 5
            and "campaign.finished" in [r.json["type"] for r in webhook_receiver.at(path)]
        )
    )
    # Five recipients and the campaign's end, each delivered once (the log is projected a little later).
    poll(lambda: [d["status"] for d in _deliveries(api, webhook_id)] == ["delivered"] * 6, timeout=60)
    got = finished()
    assert sorted((e["data"]["to_number"], e["data"]["status"], e["data"]["reason"]) for e in got) == sorted(
        (n, "cancelled", "Campaign cancelled") for n in numbers
    )
    assert len({e["id"] for e in got}) == 5 and all(e["data"]["campaign_id"] == job_id for e in got)
    assert all(verify(secret, r.headers["Switchboard-Signature"], r.body) for r in webhook_receiver.at(path))
    assert len(webhook_receiver.at(path)) == 6
