"""What callees ask for, over the whole stack on the simulator (issue 15): the callee asks to opt
out or to be called back during a call (the simulator calls the agent's tools as ElevenLabs would,
`callee_requests`), and the post-call analysis decides retries (`data_collection_values`)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from devinfra.numbers import outcome_number
from devinfra.stack import Stack
from tests.e2e.conftest import poll
from tests.e2e.test_tool_tokens import _token_of

LA = ZoneInfo("America/Los_Angeles")  # the zone of +1 415 numbers
TOOL_TOKEN = "X-Switchboard-Tool-Token"
# How far ahead the callee asks to be called back: beyond the few seconds a loaded machine may take
# from the submission to the tool call (an ISO 8601 time already past is refused, never moved).
CALLBACK_AHEAD_S = 15


@pytest.fixture(scope="module")
def line(api: httpx.Client, sim: httpx.Client, stack: Stack) -> Iterator[dict[str, str]]:
    """An agent with the callback and opt-out tools (created through the API, their tokens live in
    tool-webhooks), and a number."""
    base = f"{stack.url('tool-webhooks')}/api/v1"
    callback = api.post("/api/v1/tools/callback", json={"webhook_base_url": base})
    opt_out = api.post("/api/v1/tools/opt-out", json={"webhook_base_url": base})
    assert callback.status_code == 200 and opt_out.status_code == 200, (callback.text, opt_out.text)
    assert (callback.json()["name"], opt_out.json()["name"]) == ("schedule_callback", "opt_out")
    agent = api.post(
        "/api/v1/agents",
        json={"name": "Callee requests", "tool_ids": [callback.json()["tool_id"], opt_out.json()["tool_id"]]},
    )
    assert agent.status_code == 200, agent.text
    phone = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": outcome_number(1), "label": "callee", "sid": "AC" + "5" * 32, "token": "t"},
    )
    assert phone.status_code == 200, phone.text
    # Calls may start once tool-webhooks knows both tools' tokens (provisioning's events projected):
    # a probe for an unknown conversation is answered 200 then (401 before).
    with httpx.Client(base_url=f"{base}/webhook", timeout=30) as hooks:

        def known(route: str, token: str) -> bool:
            probe = {"conversation_id": f"conv_probe_{uuid.uuid4().hex}"}
            return hooks.post(route, json=probe, headers={TOOL_TOKEN: token}).status_code == 200

        for created, route in ((callback, "calls/callback"), (opt_out, "calls/opt-out")):
            token = _token_of(sim, api.get(f"/api/v1/tools/{created.json()['tool_id']}").json())
            poll(functools.partial(known, route, token))
    # The tools are called only when a callee asks for them (`_ask`), as a real agent would.
    on_request = {"tools_on_request": ["schedule_callback", "opt_out"]}
    assert sim.post("/_sim/config", json=on_request).status_code == 200
    try:
        yield {"agent_id": agent.json()["agent_id"], "phone_number_id": phone.json()["phone_number_id"]}
    finally:
        reset = {"callee_requests": None, "data_collection_values": None, "tools_on_request": None}
        sim.post("/_sim/config", json=reset)


def _ask(sim: httpx.Client, number: str, tool: str, says: str, **params: Any) -> None:
    """From now on the callee of `number` asks for `tool` in their next call (once)."""
    current = sim.get("/_sim/config").json()["callee_requests"]
    asks = [{"tool": tool, "says": says, "params": params, "once": True}]
    response = sim.post("/_sim/config", json={"callee_requests": {**current, number: asks}})
    assert response.status_code == 200, response.text


def _submit(api: httpx.Client, line: dict[str, str], numbers: list[str], **body: Any) -> str:
    response = api.post(
        "/api/v1/batch-calling/submit",
        json={"call_name": "callee", **line, "recipients": [{"phone_number": n} for n in numbers]} | body,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _finished(api: httpx.Client, job: str) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        if api.get(f"/api/v1/batch-calling/{job}").json()["status"] != "completed":
            return None
        return list(api.get(f"/api/v1/batch-calling/{job}/calls").json()["calls"])

    return list(poll(done))


def _dials(sim: httpx.Client, number: str) -> int:
    return int(sim.get("/_sim/calls/stats").json()["dials_by_number"].get(number, 0))


def _tool_answers(sim: httpx.Client, tool: str) -> list[dict[str, Any]]:
    return [t for t in sim.get("/_sim/tool-calls").json()["tool_calls"] if t["tool_name"] == tool]


def test_a_callee_who_says_stop_calling_me_is_opted_out_and_never_dialled_again(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    leaving, staying = outcome_number(1), outcome_number(1)
    _ask(sim, leaving, "opt_out", "Please stop calling me", reason="stop calling me")
    job = _submit(api, line, [leaving, staying], retry_count=2)
    calls = {c["to_number"]: c for c in _finished(api, job)}
    assert (calls[leaving]["status"], calls[leaving]["reason"]) == ("opted_out", "Opted out during the call")
    assert calls[staying]["status"] == "completed"
    conversation = calls[leaving]["conversation_id"]
    (answer,) = [t for t in _tool_answers(sim, "opt_out") if t["conversation_id"] == conversation]
    assert answer["status"] == 200 and "will not be called again" in answer["response_text"]

    listed = api.get("/api/v1/do-not-call", params={"page_size": 100}).json()["numbers"]
    (row,) = [n for n in listed if n["phone_number"] == leaving]
    assert (row["source"], row["conversation_id"]) == ("voice", conversation)
    assert [
        c["to_number"] for c in api.get(f"/api/v1/batch-calling/{job}/calls?status=opted_out").json()["calls"]
    ] == [leaving]

    again = _submit(api, line, [leaving])
    assert [c["status"] for c in _finished(api, again)] == ["skipped_dnc"]
    assert _dials(sim, leaving) == 1


def test_a_callback_the_callee_asks_for_is_one_extra_attempt_at_that_time(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    number = outcome_number(1)
    asked = (datetime.now(LA) + timedelta(seconds=CALLBACK_AHEAD_S)).replace(microsecond=0)
    _ask(
        sim,
        number,
        "schedule_callback",
        "Call me back in a few seconds",
        requested_time=asked.replace(tzinfo=None).isoformat(),
    )
    job = _submit(api, line, [number], retry_count=0)
    (call,) = _finished(api, job)
    assert call["status"] == "completed" and call["retry_count"] == 0
    assert call["callback_at_unix"] == int(asked.timestamp())
    assert call["callback_requested"] == asked.replace(tzinfo=None).isoformat()
    assert len(call["attempts"]) == 2 and _dials(sim, number) == 2
    second_started = call["attempts"][1]["started_at_unix"]
    assert second_started >= int(asked.timestamp())
    (answer,) = [
        t
        for t in _tool_answers(sim, "schedule_callback")
        if t["conversation_id"] == call["attempts"][0]["conversation_id"]
    ]
    assert f"{asked:%H:%M}" in answer["response_text"] and "Booked" in answer["response_text"]


def test_a_single_calls_callback_is_a_follow_up_call_with_the_same_agent_number_and_variables(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    number = outcome_number(1)
    _ask(sim, number, "schedule_callback", "Call me back in two seconds", requested_time="in 2 seconds")
    first = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": line["agent_id"],
            "agent_phone_number_id": line["phone_number_id"],
            "to_number": number,
            "dynamic_variables": {"plan": "gold"},
        },
    )
    assert first.status_code == 200, first.text
    calls = poll(
        lambda: (
            (found := sim.get("/_sim/calls", params={"to_number": number}).json()["calls"])
            and len(found) == 2
            and found
        )
    )
    assert {c["conversation_id"] for c in calls} >= {first.json()["conversation_id"]}
    follow_up = next(c for c in calls if c["conversation_id"] != first.json()["conversation_id"])
    conversation = sim.get(
        f"/v1/convai/conversations/{follow_up['conversation_id']}", headers={"xi-api-key": "sim-key"}
    ).json()
    assert conversation["agent_id"] == line["agent_id"]
    variables = conversation["conversation_initiation_client_data"]["dynamic_variables"]
    assert variables["plan"] == "gold"
    assert _dials(sim, number) == 2


def test_analysis_values_retry_or_end_a_recipient(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    later, wrong = outcome_number("1"), outcome_number("7")  # a voicemail: telephony alone would retry it
    values = sim.get("/_sim/config").json()["data_collection_values"]
    values |= {later: {"outcome": "call_back_later"}, wrong: {"outcome": "wrong_person"}}
    assert sim.post("/_sim/config", json={"data_collection_values": values}).status_code == 200
    rules = [
        {"value": "call_back_later", "action": "retry", "delay_s": 60},
        {"value": "wrong_person", "action": "finish"},
    ]
    job = _submit(api, line, [later, wrong], retry_count=1, analysis_rules=rules)
    calls = {c["to_number"]: c for c in _finished(api, job)}
    assert (calls[later]["status"], calls[later]["retry_count"]) == ("completed", 1)
    assert "none left" in calls[later]["reason"] and _dials(sim, later) == 2
    assert calls[later]["analysis"]["data_collection_results"]["outcome"] == "call_back_later"
    assert (calls[wrong]["status"], calls[wrong]["retry_count"]) == ("voicemail", 0)
    assert (
        calls[wrong]["reason"] == "Ended by the analysis: outcome = wrong_person" and _dials(sim, wrong) == 1
    )
