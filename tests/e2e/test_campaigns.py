"""Campaigns (api-v1.md 10) through the REST API over the whole stack."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from devinfra.numbers import outcome_numbers
from tests.e2e.conftest import poll

FINAL = {"completed", "no_answer", "busy", "failed", "voicemail", "cancelled", "skipped_dnc"}


@pytest.fixture(scope="module")
def line(api: httpx.Client) -> dict[str, str]:
    agent = api.post("/api/v1/agents", json={"name": "Campaign Agent"}).json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550188", "label": "campaigns", "sid": "AC" + "5" * 32, "token": "t"},
    ).json()["phone_number_id"]
    return {"agent_id": agent, "phone_number_id": number}


def _wait_final(api: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    return dict(
        poll(
            lambda: (
                (j := api.get(f"/api/v1/batch-calling/{job_id}").json())["status"]
                in {"completed", "failed", "cancelled"}
                and j
            ),
            timeout=timeout,
        )
    )


def test_basic_campaign_runs_to_completion_with_retries(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    numbers = outcome_numbers([1, 5, 6, 2])
    submitted = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": "Q1 Appointment Reminders",
            **line,
            "recipients": [
                {"phone_number": n, "name": f"Customer {i}", "dynamic_variables": {"customer_name": f"C{i}"}}
                for i, n in enumerate(numbers)
            ],
            "retry_count": 2,
        },
    )
    assert submitted.status_code == 200, submitted.text
    job = submitted.json()
    assert job["status"] == "pending" and job["total_calls_scheduled"] == 4
    assert job["total_calls_dispatched"] == 0 and job["total_calls_finished"] == 0
    assert (
        job["phone_provider"] == "twilio"
        and job["retry_count"] == 2
        and job["name"] == "Q1 Appointment Reminders"
    )
    assert job["id"].startswith("batch_")

    done = _wait_final(api, job["id"])
    assert done["status"] == "completed"
    assert (
        done["total_calls_finished"] == done["total_calls_scheduled"] == done["total_calls_dispatched"] == 4
    )
    assert done["agent_name"] == "Campaign Agent"

    calls = {c["to_number"]: c for c in api.get(f"/api/v1/batch-calling/{job['id']}/calls").json()["calls"]}
    assert calls[numbers[0]]["status"] == "completed" and calls[numbers[0]]["conversation_id"]
    assert calls[numbers[0]]["outcome"] == "appointment_confirmed"
    assert calls[numbers[1]]["status"] == "busy" and calls[numbers[1]]["retry_count"] == 2
    assert calls[numbers[2]]["status"] == "no_answer" and calls[numbers[2]]["retry_count"] == 2
    # Nobody was dialled more often than 1 + retry_count.
    dials = sim.get("/_sim/calls/stats").json()["dials_by_number"]
    assert [dials[n] for n in numbers] == [1, 3, 3, 1]
    only_busy = api.get(f"/api/v1/batch-calling/{job['id']}/calls", params={"status": "busy"}).json()["calls"]
    assert [c["to_number"] for c in only_busy] == [numbers[1]]


def test_full_body_is_accepted_and_scheduled_in_the_future(api: httpx.Client, line: dict[str, str]) -> None:
    start = int(time.time()) + 3600
    submitted = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": "Q1 Customer Outreach Campaign",
            **line,
            "recipients": [
                {
                    "phone_number": n,
                    "name": "John Doe",
                    "email": "john@example.com",
                    "dynamic_variables": {"customer_name": "John", "appointment_time": "10:00 AM"},
                }
                for n in outcome_numbers([1, 2, 3])
            ],
            "scheduled_time_unix": start,
            "timezone": "America/New_York",
            "retry_count": 2,
            "ecommerce_credentials": {
                "platform": "woocommerce",
                "base_url": "https://mystore.example.com",
                "api_key": "ck_x",
                "api_secret": "cs_x",
            },
            "sender_email": "support@mycompany.com",
        },
    )
    assert submitted.status_code == 200, submitted.text
    job = submitted.json()
    assert job["scheduled_time_unix"] == start and job["timezone"] == "America/New_York"
    listed = api.get("/api/v1/batch-calling", params={"status": "pending", "page_size": 100}).json()["jobs"]
    assert job["id"] in {j["id"] for j in listed}
    calls = api.get(f"/api/v1/batch-calling/{job['id']}/calls").json()["calls"]
    assert [c["status"] for c in calls] == ["scheduled"] * 3
    cancelled = api.post(f"/api/v1/batch-calling/{job['id']}/cancel")
    assert cancelled.json() == {"success": True, "message": f"Batch job {job['id']} cancelled successfully"}
    after = poll(
        lambda: (j := api.get(f"/api/v1/batch-calling/{job['id']}").json())["status"] == "cancelled" and j
    )
    assert after["total_calls_dispatched"] == 0
    assert {c["status"] for c in api.get(f"/api/v1/batch-calling/{job['id']}/calls").json()["calls"]} == {
        "cancelled"
    }


def test_pause_resume_and_do_not_call(api: httpx.Client, sim: httpx.Client, line: dict[str, str]) -> None:
    numbers = outcome_numbers([1, 2, 3, 4])
    blocked = numbers[2]
    added = api.post("/api/v1/do-not-call", json={"phone_number": blocked, "reason": "opted out"})
    assert added.status_code == 200, added.text
    # Added again without a reason: the entry stays as it was (a fresh user's trial saw it erased).
    again = api.post("/api/v1/do-not-call", json={"phone_number": blocked})
    assert again.status_code == 200, again.text
    entry = {"phone_number": blocked, "reason": "opted out", "added_at_unix": added.json()["added_at_unix"]}
    assert again.json() | entry == again.json()
    listed = [d for d in api.get("/api/v1/do-not-call").json()["numbers"] if d["phone_number"] == blocked]
    assert [d | entry == d for d in listed] == [True]
    job = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": "paused",
            **line,
            "recipients": [{"phone_number": n} for n in numbers],
            # Late enough that the pause lands before the campaign could finish on a loaded machine.
            "scheduled_time_unix": int(time.time()) + 6,
        },
    ).json()
    paused = api.post(f"/api/v1/batch-calling/{job['id']}/pause")
    assert paused.status_code == 200, paused.text
    assert api.get(f"/api/v1/batch-calling/{job['id']}").json()["status"] == "paused"
    resumed = api.post(f"/api/v1/batch-calling/{job['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    done = _wait_final(api, job["id"])
    assert done["status"] == "completed" and done["total_calls_finished"] == 4
    calls = {
        c["to_number"]: c["status"]
        for c in api.get(f"/api/v1/batch-calling/{job['id']}/calls").json()["calls"]
    }
    assert calls[blocked] == "skipped_dnc"
    assert blocked not in sim.get("/_sim/calls/stats").json()["dials_by_number"]
    assert api.delete(f"/api/v1/do-not-call/{blocked}").status_code == 200


def test_invalid_recipients_are_listed_one_by_one(api: httpx.Client, line: dict[str, str]) -> None:
    response = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": "bad",
            **line,
            "recipients": [
                {"phone_number": "+14155551111"},
                {"phone_number": "555-1234"},
                {"phone_number": "+1"},
            ],
        },
    )
    assert response.status_code == 422
    body = response.json()
    assert body["success"] is False and body["error"] == "Invalid recipients"
    assert [p["index"] for p in body["detail"]] == [1, 2]


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"retry_count": 6}, 422),
        ({"retry_count": -1}, 422),
        ({"recipients": []}, 422),
        ({"timezone": "Mars/Olympus"}, 422),
        ({"agent_id": "agent_nope"}, 404),
        ({"phone_number_id": "phnum_nope"}, 404),
        ({"recipients": [{"phone_number": "+14155551111"}] * 1001}, 422),
    ],
)
def test_bad_submissions(
    api: httpx.Client, line: dict[str, str], change: dict[str, Any], status: int
) -> None:
    body = {"call_name": "x", **line, "recipients": [{"phone_number": "+14155551111"}]} | change
    response = api.post("/api/v1/batch-calling/submit", json=body)
    assert response.status_code == status, response.text
    assert response.json()["success"] is False


def test_unknown_job_and_page_size(api: httpx.Client) -> None:
    assert api.get("/api/v1/batch-calling/batch_nope").status_code == 404
    assert api.post("/api/v1/batch-calling/batch_nope/cancel").status_code == 404
    assert api.get("/api/v1/batch-calling", params={"page_size": 101}).status_code == 422
