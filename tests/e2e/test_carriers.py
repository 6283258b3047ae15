"""Calls that would fail after dialling, and carriers' refusals, answered right (issue 11), over the
whole stack: the simulator behaves like ElevenLabs (a conversation fails when its agent's dynamic
variables are missing; a carrier's refusal is 200 `success: false` with the carrier's message; a
`call_initiation_failure` carries the carrier's SIP/Twilio answer)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devinfra.numbers import outcome_number
from tests.e2e.conftest import poll, upstream_requests

ISSUE_FIRST_MESSAGE = "Hi {{customer_name}}, about order {{order_id}}"
AUTHENTICATE = "HTTP 401 error: Unable to create record: Authenticate"
INVALID_TO = (
    "HTTP 400 error: Unable to create record: The 'To' number +14155550199 is not a valid phone number."
)


def _agent(api: httpx.Client, **body: Any) -> str:
    response = api.post("/api/v1/agents", json={"name": f"agent-{uuid.uuid4().hex[:6]}", **body})
    assert response.status_code == 200, response.text
    return str(response.json()["agent_id"])


def _twilio_number(api: httpx.Client) -> str:
    response = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": outcome_number(1), "label": "carrier", "sid": "AC" + "7" * 32, "token": "t"},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["phone_number_id"])


def _sip_number(api: httpx.Client) -> str:
    response = api.post(
        "/api/v1/phone-numbers/sip-trunk",
        json={
            "phone_number": outcome_number(1),
            "label": "trunk",
            "provider": "sip_trunk",
            "outbound_trunk_config": {"address": "sip.example.com"},
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["phone_number_id"])


@pytest.fixture
def sim_config(sim: httpx.Client) -> Iterator[httpx.Client]:
    yield sim
    sim.post("/_sim/config", json={"dial_refusals": None, "carrier_answers": None})
    sim.delete("/_sim/faults")


def _dials(sim: httpx.Client, to_number: str) -> int:
    return int(sim.get("/_sim/calls/stats").json()["dials_by_number"].get(to_number, 0))


def _call(
    api: httpx.Client, agent_id: str, phone_id: str, route: str = "twilio", **body: Any
) -> httpx.Response:
    path = (
        "/api/v1/phone-numbers/twilio/outbound-call"
        if route == "twilio"
        else "/api/v1/sip-trunk/outbound-call"
    )
    return api.post(path, json={"agent_id": agent_id, "agent_phone_number_id": phone_id, **body})


# ---- dynamic variables ------------------------------------------------------------------------


def test_missing_dynamic_variable_is_422_before_anything_rings(api: httpx.Client, sim: httpx.Client) -> None:
    agent = _agent(api, first_message=ISSUE_FIRST_MESSAGE)
    phone = _twilio_number(api)
    to = outcome_number(1)
    response = _call(api, agent, phone, to_number=to, dynamic_variables={"customer_name": "Ana"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["success"], body["error"]) == (False, "Missing dynamic variables")
    assert "order_id" in body["detail"] and "customer_name" not in body["detail"]
    assert _dials(sim, to) == 0

    # Neighbours: nothing supplied names both; a number stays a number upstream; an override of the
    # first message replaces the agent's (and its variables).
    assert "customer_name, order_id" in _call(api, agent, phone, to_number=outcome_number(1)).json()["detail"]
    to = outcome_number(1)
    placed = _call(
        api, agent, phone, to_number=to, dynamic_variables={"customer_name": "Ana", "order_id": 1042}
    )
    assert placed.status_code == 200, placed.text
    sent = sim.get("/_sim/calls", params={"to_number": to}).json()["calls"][0]["request"]
    variables = sent["conversation_initiation_client_data"]["dynamic_variables"]
    assert variables["order_id"] == 1042 and variables["customer_name"] == "Ana"
    overridden = _call(api, agent, phone, to_number=outcome_number(1), first_message="Hello {{nickname}}")
    assert overridden.status_code == 422 and "nickname" in overridden.json()["detail"]
    assert _call(api, agent, phone, to_number=outcome_number(1), first_message="Hello!").status_code == 200


def test_defaults_and_system_variables_count_as_supplied(api: httpx.Client) -> None:
    agent = _agent(
        api,
        first_message="Hi {{customer_name}}, calling from {{system__called_number}}",
        system_prompt="Talk about order {{order_id}}.",
        conversation_config={
            "agent": {"dynamic_variables": {"dynamic_variable_placeholders": {"order_id": "n/a"}}}
        },
    )
    phone = _sip_number(api)
    missing = _call(api, agent, phone, "sip", to_number=outcome_number(1))
    assert missing.status_code == 422 and "customer_name" in missing.json()["detail"]
    assert "order_id" not in missing.json()["detail"] and "system__" not in missing.json()["detail"]
    ok = _call(
        api, agent, phone, "sip", to_number=outcome_number(1), dynamic_variables={"customer_name": "Bo"}
    )
    assert ok.status_code == 200, ok.text


def test_what_elevenlabs_does_without_the_check(api: httpx.Client, sim: httpx.Client) -> None:
    """The simulator, like ElevenLabs, rings and then fails such a conversation: this is what the
    check before dialling spares (an agent changed upstream after our read model saw it)."""
    agent = _agent(api, first_message="Hello")
    phone = _twilio_number(api)
    to = outcome_number(1)
    assert _call(api, agent, phone, to_number=to).status_code == 200
    sim_agent = sim.patch(
        f"/v1/convai/agents/{agent}",
        headers={"xi-api-key": "sim-key"},
        json={"conversation_config": {"agent": {"first_message": ISSUE_FIRST_MESSAGE}}},
    )
    assert sim_agent.status_code == 200, sim_agent.text
    cid = sim.post(
        "/v1/convai/twilio/outbound-call",
        headers={"xi-api-key": "sim-key"},
        json={
            "agent_id": agent,
            "agent_phone_number_id": phone,
            "to_number": outcome_number(1),
            "conversation_initiation_client_data": {"dynamic_variables": {"customer_name": "Ana"}},
        },
    ).json()["conversation_id"]
    conversation = poll(
        lambda: (
            (c := sim.get(f"/v1/convai/conversations/{cid}", headers={"xi-api-key": "sim-key"}).json())[
                "status"
            ]
            == "failed"
            and c
        )
    )
    assert conversation["metadata"]["termination_reason"] == (
        "Missing required dynamic variables in first message: {'order_id'}"
    )


def test_campaign_recipients_missing_variables_are_listed(api: httpx.Client, sim: httpx.Client) -> None:
    agent = _agent(api, first_message=ISSUE_FIRST_MESSAGE)
    phone = _twilio_number(api)
    numbers = [outcome_number(1) for _ in range(3)]
    response = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": "vars",
            "agent_id": agent,
            "phone_number_id": phone,
            "recipients": [
                {"phone_number": numbers[0], "dynamic_variables": {"customer_name": "A", "order_id": 1}},
                {"phone_number": numbers[1], "dynamic_variables": {"customer_name": "B"}},
                {"phone_number": numbers[2]},
            ],
        },
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "Invalid recipients"
    assert [(p["index"], p["missing_dynamic_variables"]) for p in body["detail"]] == [
        (1, ["order_id"]),
        (2, ["customer_name", "order_id"]),
    ]
    assert all(_dials(sim, n) == 0 for n in numbers)


# ---- carriers' refusals -------------------------------------------------------------------------


def test_bad_twilio_credentials_are_a_client_error_with_the_carriers_message(
    api: httpx.Client, sim_config: httpx.Client
) -> None:
    agent = _agent(api, first_message="Hi")
    phone = _twilio_number(api)
    sim_config.post("/_sim/config", json={"dial_refusals": {phone: AUTHENTICATE}})
    response = _call(api, agent, phone, to_number=outcome_number(1))
    assert response.status_code == 422, response.text  # was 502
    assert response.json() == {"success": False, "error": "Carrier refused the call", "detail": AUTHENTICATE}


def test_a_number_the_carrier_refuses_is_that_recipients_failure(
    api: httpx.Client, sim_config: httpx.Client
) -> None:
    agent = _agent(api, first_message="Hi")
    phone = _twilio_number(api)
    to = outcome_number(1)
    sim_config.post("/_sim/config", json={"dial_refusals": {to: INVALID_TO}})
    response = _call(api, agent, phone, to_number=to)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "Carrier refused the number"

    # In a campaign: that recipient fails once (no retry), the others are called, the campaign completes.
    others = [outcome_number(1), outcome_number(2)]
    job = _submit(api, agent, phone, [to, *others], retry_count=2)
    final = _wait_final(api, job)
    assert final["status"] == "completed"
    calls = api.get(f"/api/v1/batch-calling/{job}/calls", params={"page_size": 100}).json()["calls"]
    results = {c["to_number"]: c for c in calls}
    assert results[to]["status"] == "failed" and _dial_requests(sim_config, to) == 2  # single call + 1
    assert results[to]["retry_count"] == 0
    assert all(results[n]["status"] == "completed" for n in others)


def test_campaign_stops_after_a_few_configuration_refusals(
    api: httpx.Client, sim_config: httpx.Client
) -> None:
    agent = _agent(api, first_message="Hi")
    phone = _twilio_number(api)
    sim_config.post("/_sim/config", json={"dial_refusals": {phone: AUTHENTICATE}})
    numbers = [outcome_number(1) for _ in range(25)]
    job = _submit(api, agent, phone, numbers, retry_count=2, concurrency_limit=1)
    final = _wait_final(api, job)
    assert final["status"] == "failed"
    status = api.get(f"/api/v1/batch-calling/{job}").json()
    assert AUTHENTICATE in (status.get("status_reason") or ""), status
    refused = sum(_dial_requests(sim_config, n) for n in numbers)
    assert refused == 3  # CAMPAIGNS_CONFIGURATION_REFUSALS, not ~20 retried dials


def _submit(api: httpx.Client, agent: str, phone: str, numbers: list[str], **extra: Any) -> str:
    response = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": f"carriers-{uuid.uuid4().hex[:6]}",
            "agent_id": agent,
            "phone_number_id": phone,
            "recipients": [{"phone_number": n} for n in numbers],
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _wait_final(api: httpx.Client, job_id: str) -> dict[str, Any]:
    return dict(
        poll(
            lambda: (
                (j := api.get(f"/api/v1/batch-calling/{job_id}").json())["status"]
                in {"completed", "failed", "cancelled"}
                and j
            ),
            timeout=90,
        )
    )


def _dial_requests(sim: httpx.Client, to_number: str) -> int:
    """Outbound-call requests for `to_number` that reached the simulator (refused ones included)."""
    return sum(
        1
        for r in upstream_requests(sim, "/outbound-call", "POST")
        if (r["json"] or {}).get("to_number") == to_number
    )


# ---- the carrier's answer in call_initiation_failure ----------------------------------------------


@pytest.mark.parametrize(
    ("route", "answer", "status"),
    [
        ("sip", {"sip_status_code": 486}, "busy"),  # the issue's example ("Busy Here"), was failed
        ("sip", {"sip_status_code": 480}, "no_answer"),
        ("sip", {"sip_status_code": 404}, "failed"),
        ("twilio", {"sip_status_code": 486, "call_status": "failed"}, "busy"),
        ("twilio", {"sip_status_code": 487, "call_status": "canceled"}, "no_answer"),
        ("twilio", {"sip_status_code": 503, "call_status": "failed"}, "failed"),
    ],
)
def test_call_initiation_failure_follows_the_carriers_answer(
    api: httpx.Client, sim_config: httpx.Client, route: str, answer: dict[str, Any], status: str
) -> None:
    agent = _agent(api, first_message="Hi")
    phone = _sip_number(api) if route == "sip" else _twilio_number(api)
    to = outcome_number(1)
    sim_config.post("/_sim/config", json={"carrier_answers": {to: answer}})
    response = _call(api, agent, phone, route, to_number=to)
    assert response.status_code == 200, response.text
    cid = response.json()["conversation_id"]
    call = poll(
        lambda: (c := api.get(f"/api/v1/calls/{cid}").json()).get("status") not in (None, "dialing") and c
    )
    assert call["status"] == status
    assert f"SIP {answer['sip_status_code']}" in call["reason"]


# ---- 429 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (None, "system_busy"),
        (
            {"detail": {"status": "too_many_concurrent_requests", "message": "Too many concurrent calls"}},
            "too_many_concurrent_requests",
        ),
    ],
)
def test_rate_limited_call_says_when_to_retry_and_why(
    api: httpx.Client, sim_config: httpx.Client, body: Any, reason: str
) -> None:
    agent = _agent(api, first_message="Hi")
    phone = _twilio_number(api)
    sim_config.post(
        "/_sim/faults",
        json={"method": "POST", "path_regex": "/outbound-call$", "status": 429, "count": 10, "body": body},
    )
    response = _call(api, agent, phone, to_number=outcome_number(1))
    if response.status_code == 202:
        # Telephony's own bounded retries (honouring the delay) can outlast GATEWAY_REPLY_TIMEOUT_S.
        op = response.json()["status_url"]
        result = poll(lambda: (o := api.get(op).json())["status"] != "pending" and o)
        status_code, detail = result["status_code"], result["result"]["detail"]
    else:
        assert response.status_code == 429, response.text
        assert int(response.headers["Retry-After"]) >= 1  # was missing
        status_code, detail = 429, response.json()["detail"]
    assert status_code == 429
    assert reason in detail and "Retry after 0 seconds" not in detail
