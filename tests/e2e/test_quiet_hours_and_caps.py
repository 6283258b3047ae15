"""Quiet hours and frequency caps through the REST API over the whole stack (the simulator). The
e2e stack's rules file (conftest: QUIET_HOURS_FILE) allows calls at any hour except to Ireland,
closed for six hours from the stack's start; the platform cap is lifted there, so the campaign's
own cap is what these tests meet (the platform cap's own tests run on clocks passed in)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from devinfra.numbers import outcome_number
from tests.e2e.conftest import poll


def _irish() -> str:
    """A fresh valid Dublin number (+353 1 xxx xxxx) answered by the simulator (last digit 1)."""
    return f"+3531{uuid.uuid4().int % 10**5:05d}11"


@pytest.fixture(scope="module")
def line(api: httpx.Client) -> dict[str, str]:
    agent = api.post("/api/v1/agents", json={"name": "Quiet Agent"}).json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550178", "label": "quiet", "sid": "AC" + "8" * 32, "token": "t"},
    ).json()["phone_number_id"]
    return {"agent_id": agent, "phone_number_id": number}


def _submit(api: httpx.Client, line: dict[str, str], **body: Any) -> str:
    response = api.post("/api/v1/batch-calling/submit", json={"call_name": "quiet", **line} | body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _first_call(api: httpx.Client, job_id: str) -> dict[str, Any]:
    calls = api.get(f"/api/v1/batch-calling/{job_id}/calls").json()["calls"]
    return dict(calls[0]) if calls else {}


def _dials(sim: httpx.Client, number: str) -> int:
    return int(sim.get("/_sim/calls/stats").json()["dials_by_number"].get(number, 0))


def test_a_recipient_in_quiet_hours_waits_and_says_why(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    number = _irish()
    # The campaign's own window is open all day: only the platform's hours hold the call.
    job_id = _submit(
        api, line, recipients=[{"phone_number": number}], calling_window={"start": "00:00", "end": "00:00"}
    )
    call = poll(lambda: (c := _first_call(api, job_id)).get("waiting_reason") and c)
    assert call["status"] == "scheduled" and call["waiting_reason"] == "quiet_hours"
    # The Irish hours open six hours after the stack started (less the time tests have run since).
    assert time.time() + 60 < call["next_attempt_at_unix"] <= time.time() + 6 * 3600 + 120
    assert _dials(sim, number) == 0

    assert api.post(f"/api/v1/batch-calling/{job_id}/cancel").status_code == 200
    cancelled = poll(lambda: (c := _first_call(api, job_id))["status"] == "cancelled" and c)
    assert cancelled["waiting_reason"] is None
    assert _dials(sim, number) == 0


def test_the_campaign_cap_holds_a_retry_until_the_next_day(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    number = outcome_number("6")  # never answers
    job_id = _submit(
        api,
        line,
        recipients=[{"phone_number": number}],
        retry_count=2,
        retry_delays={"no_answer": 0},
        max_daily_attempts_per_number=1,
    )
    call = poll(lambda: (c := _first_call(api, job_id)).get("waiting_reason") == "campaign_daily_cap" and c)
    assert call["status"] == "scheduled" and call["retry_count"] == 1
    assert time.time() + 23 * 3600 < call["next_attempt_at_unix"] <= time.time() + 24 * 3600
    assert _dials(sim, number) == 1
    assert api.post(f"/api/v1/batch-calling/{job_id}/cancel").status_code == 200


def test_a_cap_below_one_is_refused(api: httpx.Client, line: dict[str, str]) -> None:
    response = api.post(
        "/api/v1/batch-calling/submit",
        json={"call_name": "quiet", **line, "recipients": [{"phone_number": outcome_number("1")}]}
        | {"max_daily_attempts_per_number": 0},
    )
    assert response.status_code == 422 and response.json()["success"] is False


def test_a_single_call_in_quiet_hours_is_refused_unless_overridden(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    number = _irish()
    body = {**line, "agent_phone_number_id": line["phone_number_id"], "to_number": number}
    del body["phone_number_id"]
    refused = api.post("/api/v1/phone-numbers/twilio/outbound-call", json=body)
    assert refused.status_code == 422, refused.text
    answer = refused.json()
    assert answer["success"] is False and answer["error"] == "Outside quiet hours"
    assert number in answer["detail"] and "override_quiet_hours" in answer["detail"]
    assert _dials(sim, number) == 0

    placed = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call", json=body | {"override_quiet_hours": True}
    )
    assert placed.status_code == 200, placed.text
    conversation_id = placed.json()["conversation_id"]
    call = poll(lambda: (r := api.get(f"/api/v1/calls/{conversation_id}")).status_code == 200 and r.json())
    assert call["quiet_hours_overridden"] is True
    assert _dials(sim, number) == 1

    # Inside the hours (every other country on this stack) nothing is recorded.
    ordinary = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call", json=body | {"to_number": outcome_number("1")}
    )
    assert ordinary.status_code == 200, ordinary.text
    other = ordinary.json()["conversation_id"]
    assert (
        poll(lambda: (r := api.get(f"/api/v1/calls/{other}")).status_code == 200 and r.json())[
            "quiet_hours_overridden"
        ]
        is False
    )


def _import(api: httpx.Client, e164: str) -> str:
    sid = "AC" + uuid.uuid4().hex
    response = api.post(
        "/api/v1/phone-numbers", json={"phone_number": e164, "label": e164, "sid": sid, "token": "t"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["phone_number_id"])


def test_a_caller_id_pool_dials_locally_and_reports_each_number(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    sf_caller = _import(api, outcome_number("0"))
    ny_caller = _import(api, f"+1212{uuid.uuid4().int % 700 + 200:03d}{uuid.uuid4().int % 1000:03d}0")
    sf = outcome_number("1")
    job_id = _submit(
        api,
        line,
        recipients=[{"phone_number": sf}],
        phone_number_ids=[ny_caller, sf_caller],
        phone_number_daily_caps={ny_caller: 10},
    )
    job = poll(
        lambda: (j := api.get(f"/api/v1/batch-calling/{job_id}").json())["status"] == "completed" and j
    )
    by_id = {p["phone_number_id"]: p for p in job["phone_numbers"]}
    assert list(by_id) == [line["phone_number_id"], ny_caller, sf_caller]
    # The campaign's own number is a +1 415 one too: the first of the closest equals dials.
    assert by_id[line["phone_number_id"]]["dials"] + by_id[sf_caller]["dials"] == 1
    assert by_id[ny_caller] == {
        "phone_number_id": ny_caller,
        "dials": 0,
        "answered": 0,
        "answer_rate": None,
        "daily_cap": 10,
    }
    dialled = [p for p in job["phone_numbers"] if p["dials"]]
    assert dialled[0]["answered"] == 1 and dialled[0]["answer_rate"] == 1.0


def test_a_caller_id_pool_naming_an_unknown_number_is_404(api: httpx.Client, line: dict[str, str]) -> None:
    response = api.post(
        "/api/v1/batch-calling/submit",
        json={"call_name": "quiet", **line, "recipients": [{"phone_number": outcome_number("1")}]}
        | {"phone_number_ids": ["phnum_nobody"]},
    )
    assert response.status_code == 404, response.text
    assert "phnum_nobody" in response.json()["error"]


def test_a_budget_too_small_for_one_call_pauses_before_dialling(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    number = outcome_number("1")
    # Half a minute: less than one call's reservation (CAMPAIGNS_BUDGET_CALL_ESTIMATE_S, 60 s).
    job_id = _submit(api, line, recipients=[{"phone_number": number}], max_total_minutes=0.5)
    job = poll(lambda: (j := api.get(f"/api/v1/batch-calling/{job_id}").json())["status"] == "paused" and j)
    assert job["status_reason"].startswith("Budget:") and job["max_total_minutes"] == 0.5
    assert job["call_minutes_used"] == 0
    assert _dials(sim, number) == 0
    assert api.post(f"/api/v1/batch-calling/{job_id}/cancel").status_code == 200
