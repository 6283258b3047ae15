"""Phone numbers, outbound calls and the call lifecycle (api-v1.md 5.5, 8, 9) over the whole stack."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import poll

E164_ERROR = "Invalid phone number format. Must be E.164 (e.g., +14155551234)"


def _number(last_digit: int) -> str:
    """A valid US number whose last digit picks the simulator's outcome (0-4 completed, 5 busy,
    6 no answer, 7 voicemail, 8 failed, 9 completed without a webhook)."""
    return f"+1415555{uuid.uuid4().int % 900 + 100:03d}{last_digit}"


@pytest.fixture(scope="module")
def setup(api: httpx.Client) -> dict[str, Any]:
    agent = api.post("/api/v1/agents", json={"name": "Caller", "first_message": "Hi"}).json()["agent_id"]
    twilio = api.post(
        "/api/v1/phone-numbers",
        json={
            "phone_number": "+14155551234",
            "label": "Support Line",
            "sid": "AC" + "1" * 32,
            "token": "tw-token",
        },
    )
    assert twilio.status_code == 200, twilio.text
    sip = api.post(
        "/api/v1/phone-numbers/sip-trunk",
        json={
            "phone_number": "+390620199287",
            "label": "Italy SIP Line",
            "provider": "sip_trunk",
            "supports_inbound": True,
            "supports_outbound": True,
            "outbound_trunk_config": {
                "address": "voiceagent.fibrapro.it",
                "transport": "tls",
                "media_encryption": "required",
                "headers": {"X-Account": "42"},
                "credentials": {"username": "+390620199287", "password": "sip-pass"},
            },
            "inbound_trunk_config": {"credentials": {"username": "+390620199287", "password": "sip-pass"}},
        },
    )
    assert sip.status_code == 200, sip.text
    return {
        "agent_id": agent,
        "twilio_id": twilio.json()["phone_number_id"],
        "sip_id": sip.json()["phone_number_id"],
    }


def test_numbers_are_listed_and_assigned(api: httpx.Client, setup: dict[str, Any]) -> None:
    listed = {p["phone_number_id"]: p for p in api.get("/api/v1/phone-numbers").json()["phone_numbers"]}
    assert listed[setup["twilio_id"]] == {
        "phone_number_id": setup["twilio_id"],
        "phone_number": "+14155551234",
        "label": "Support Line",
        "agent_id": None,
        "provider": "twilio",
    }
    assert listed[setup["sip_id"]]["provider"] == "sip_trunk"
    patched = api.patch(
        f"/api/v1/phone-numbers/{setup['twilio_id']}",
        json={"agent_id": setup["agent_id"], "label": "Support Line - English"},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() == {
        "phone_number_id": setup["twilio_id"],
        "phone_number": "+14155551234",
        "label": "Support Line - English",
        "agent_id": setup["agent_id"],
    }
    assert api.get(f"/api/v1/phone-numbers/{setup['twilio_id']}").json()["agent_id"] == setup["agent_id"]


def test_sip_trunk_config_reaches_elevenlabs(sim: httpx.Client, setup: dict[str, Any]) -> None:
    imports = [
        r
        for r in sim.get("/_sim/requests", params={"path": "/v1/convai/phone-numbers"}).json()["requests"]
        if r["method"] == "POST" and r["json"]["provider"] == "sip_trunk"
    ]
    outbound = imports[-1]["json"]["outbound_trunk_config"]
    assert outbound["address"] == "voiceagent.fibrapro.it"
    assert outbound["transport"] == "tls"
    assert outbound["media_encryption"] == "required"
    assert outbound["headers"] == {"X-Account": "42"}
    assert outbound["credentials"]["username"] == "+390620199287"
    secrets = sim.get(f"/_sim/phone-numbers/{setup['sip_id']}/secrets").json()
    assert "sip-pass" in str(secrets)


def test_twilio_call_with_full_body_completes(
    api: httpx.Client, sim: httpx.Client, setup: dict[str, Any]
) -> None:
    to_number = _number(1)
    response = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": setup["agent_id"],
            "agent_phone_number_id": setup["twilio_id"],
            "to_number": to_number,
            "first_message": "Hello John! This is Sarah from Acme Corp.",
            "dynamic_variables": {"customer_name": "John Doe", "appointment_date": "February 1, 2026"},
            "ecommerce_credentials": {
                "platform": "woocommerce",
                "base_url": "https://mystore.example.com",
                "api_key": "ck_x",
                "api_secret": "cs_x",
            },
            "customer_info": {"name": "John Doe", "email": "john@example.com"},
            "sender_email": "support@acmecorp.com",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "message", "conversation_id", "call_sid", "ecommerce_enabled"}
    assert (
        body["success"] is True and body["message"] == "Call initiated" and body["ecommerce_enabled"] is True
    )
    assert body["call_sid"]
    conversation_id = body["conversation_id"]

    # first_message and dynamic variables reached ElevenLabs in the initiation data.
    dialled = sim.get("/_sim/calls", params={"to_number": to_number}).json()["calls"]
    assert len(dialled) == 1
    client_data = dialled[0]["request"]["conversation_initiation_client_data"]
    assert client_data["dynamic_variables"]["customer_name"] == "John Doe"
    assert client_data["dynamic_variables"]["appointment_date"] == "February 1, 2026"
    assert client_data["conversation_config_override"]["agent"]["first_message"].startswith("Hello John!")

    session = api.get(f"/api/v1/email-templates/sessions/{conversation_id}").json()
    assert session["customer_info"] == {"name": "John Doe", "email": "john@example.com"}

    call = poll(
        lambda: (c := api.get(f"/api/v1/calls/{conversation_id}").json()).get("status") == "completed" and c
    )
    assert call["duration_seconds"] is not None and call["outcome"] == "appointment_confirmed"
    assert call["summary"] and call["to_number"] == to_number and call["ecommerce_enabled"] is True


def test_sip_call_returns_sip_call_id(api: httpx.Client, setup: dict[str, Any]) -> None:
    response = api.post(
        "/api/v1/sip-trunk/outbound-call",
        json={
            "agent_id": setup["agent_id"],
            "agent_phone_number_id": setup["sip_id"],
            "to_number": _number(2),
            "first_message": "Hello! This is your appointment reminder call.",
            "dynamic_variables": {"customer_name": "Jane Smith", "order_id": "ORD-12345"},
            "customer_info": {"name": "Jane Smith", "email": "jane@example.com"},
            "sender_email": "noreply@acmecorp.com",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"success", "message", "conversation_id", "sip_call_id"}
    assert body["message"] == "SIP call initiated" and body["sip_call_id"]
    cid = body["conversation_id"]
    poll(lambda: api.get(f"/api/v1/calls/{cid}").json().get("status") == "completed")


@pytest.mark.parametrize(
    ("digit", "status"), [(5, "busy"), (6, "no_answer"), (7, "voicemail"), (8, "failed")]
)
def test_unhappy_outcomes_arrive_from_the_signed_webhook(
    api: httpx.Client, setup: dict[str, Any], digit: int, status: str
) -> None:
    response = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": setup["agent_id"],
            "agent_phone_number_id": setup["twilio_id"],
            "to_number": _number(digit),
        },
    )
    assert response.status_code == 200, response.text
    cid = response.json()["conversation_id"]
    call = poll(
        lambda: (c := api.get(f"/api/v1/calls/{cid}").json()).get("status") not in (None, "dialing") and c
    )
    assert call["status"] == status


def test_lost_webhook_is_resolved_by_reconciliation(
    api: httpx.Client, sim: httpx.Client, setup: dict[str, Any]
) -> None:
    response = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": setup["agent_id"],
            "agent_phone_number_id": setup["twilio_id"],
            "to_number": _number(9),
        },
    )
    cid = response.json()["conversation_id"]
    call = poll(
        lambda: (c := api.get(f"/api/v1/calls/{cid}").json()).get("status") == "completed" and c, timeout=120
    )
    assert call["outcome"] == "appointment_confirmed"
    assert sim.get("/_sim/webhooks/deliveries", params={"conversation_id": cid}).json()["deliveries"] == []


def test_calls_list_filters(api: httpx.Client, setup: dict[str, Any]) -> None:
    calls = api.get("/api/v1/calls", params={"phone_number_id": setup["sip_id"], "page_size": 100}).json()[
        "calls"
    ]
    assert calls and all(c["phone_number_id"] == setup["sip_id"] for c in calls)
    busy = api.get("/api/v1/calls", params={"status": "busy"}).json()["calls"]
    assert all(c["status"] == "busy" for c in busy)
    assert api.get("/api/v1/calls", params={"status": "ringing"}).status_code == 422


def test_refused_dial_is_an_error_not_a_silent_success(api: httpx.Client, setup: dict[str, Any]) -> None:
    response = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": setup["agent_id"],
            "agent_phone_number_id": setup["twilio_id"],
            "to_number": "+14155550000",
        },
    )
    assert response.status_code >= 400
    assert response.json()["success"] is False


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"to_number": "4155559999"}, 422, E164_ERROR),
        ({"to_number": "+1415"}, 422, E164_ERROR),
        ({"agent_id": "agent_nope"}, 404, "Agent not found: agent_nope"),
        ({"agent_phone_number_id": "phnum_nope"}, 404, "Phone number not found: phnum_nope"),
        (
            {
                "ecommerce_credentials": {
                    "platform": "woocommerce",
                    "base_url": "https://s.example.com",
                    "api_key": "k",
                }
            },
            422,
            "Validation error",
        ),
        (
            {
                "ecommerce_credentials": {
                    "platform": "shopify",
                    "base_url": "https://s.example.com",
                    "api_key": "k",
                    "api_secret": "s",
                }
            },
            422,
            "Validation error",
        ),
        ({"customer_info": {"email": "not-an-email"}}, 422, "Validation error"),
    ],
)
def test_bad_calls_are_refused_before_dialling(
    api: httpx.Client,
    sim: httpx.Client,
    setup: dict[str, Any],
    change: dict[str, Any],
    status: int,
    error: str,
) -> None:
    before = sim.get("/_sim/calls/stats").json()["total_dials"]
    body = {
        "agent_id": setup["agent_id"],
        "agent_phone_number_id": setup["twilio_id"],
        "to_number": _number(1),
    } | change
    response = api.post("/api/v1/phone-numbers/twilio/outbound-call", json=body)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert sim.get("/_sim/calls/stats").json()["total_dials"] == before


def test_wrong_route_for_the_number_is_422(api: httpx.Client, setup: dict[str, Any]) -> None:
    response = api.post(
        "/api/v1/sip-trunk/outbound-call",
        json={
            "agent_id": setup["agent_id"],
            "agent_phone_number_id": setup["twilio_id"],
            "to_number": _number(1),
        },
    )
    assert response.status_code == 422
    assert "twilio" in response.json()["error"]


def test_same_idempotency_key_50_times_concurrently_dials_once(
    api: httpx.Client, sim: httpx.Client, setup: dict[str, Any]
) -> None:
    to_number = _number(3)
    body = {
        "agent_id": setup["agent_id"],
        "agent_phone_number_id": setup["twilio_id"],
        "to_number": to_number,
    }
    key = str(uuid.uuid4())

    def send() -> httpx.Response:
        return api.post(
            "/api/v1/phone-numbers/twilio/outbound-call", json=body, headers={"Idempotency-Key": key}
        )

    with ThreadPoolExecutor(max_workers=25) as pool:
        responses = list(pool.map(lambda _: send(), range(50)))
    codes = sorted({r.status_code for r in responses})
    assert set(codes) <= {200, 409}, codes
    winners = {r.json()["conversation_id"] for r in responses if r.status_code == 200}
    assert len(winners) == 1
    assert sim.get("/_sim/calls/stats").json()["dials_by_number"][to_number] == 1

    replay = send()
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["conversation_id"] in winners
    reused = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json=body | {"first_message": "different"},
        headers={"Idempotency-Key": key},
    )
    assert reused.status_code == 422
    assert sim.get("/_sim/calls/stats").json()["dials_by_number"][to_number] == 1


def test_customer_sessions_crud(api: httpx.Client) -> None:
    cid = f"conv_manual_{uuid.uuid4().hex[:8]}"
    stored = api.post(
        "/api/v1/email-templates/sessions",
        json={
            "conversation_id": cid,
            "customer_info": {"name": "John Doe", "email": "john@example.com", "phone": "+14155551234"},
        },
    )
    assert stored.status_code == 200, stored.text
    got = api.get(f"/api/v1/email-templates/sessions/{cid}").json()
    assert got["customer_info"] == {"name": "John Doe", "email": "john@example.com", "phone": "+14155551234"}
    listed = api.get("/api/v1/email-templates/sessions").json()
    assert cid in {s["conversation_id"] for s in listed["sessions"]} and listed["count"] >= 1
    deleted = api.delete(f"/api/v1/email-templates/sessions/{cid}")
    assert deleted.json() == {"success": True, "message": f"Session {cid} deleted successfully"}
    assert api.get(f"/api/v1/email-templates/sessions/{cid}").status_code == 404


def test_forged_webhook_is_rejected_with_no_effect(api: httpx.Client, stack: Any) -> None:
    url = f"{stack.url('tool-webhooks')}/api/v1/webhook/elevenlabs/post-call"
    payload = b'{"type":"call_initiation_failure","event_timestamp":1,"data":{"conversation_id":"conv_forged","agent_id":"a","failure_reason":"busy"}}'
    for headers in ({}, {"ElevenLabs-Signature": "t=1,v0=deadbeef"}, {"ElevenLabs-Signature": "garbage"}):
        assert httpx.post(url, content=payload, headers=headers).status_code == 401
    assert api.get("/api/v1/calls/conv_forged").status_code == 404
