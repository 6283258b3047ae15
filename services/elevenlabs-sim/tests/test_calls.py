from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from elevenlabs_sim import SimSettings, openapi
from elevenlabs_sim.testing import run_in_thread

from .conftest import API_KEY, WebhookReceiver, verify_signature, wait_until

TWILIO = {
    "provider": "twilio",
    "phone_number": "+15550001111",
    "label": "Sales line",
    "sid": "AC" + "1" * 32,
    "token": "twilio-auth-token-xyz",
}
SIP = {
    "provider": "sip_trunk",
    "phone_number": "+15550002222",
    "label": "SIP line",
    "inbound_trunk_config": {
        "allowed_addresses": ["10.0.0.0/8"],
        "credentials": {"username": "in-user", "password": "in-pass-secret"},
    },
    "outbound_trunk_config": {
        "address": "sip.example.com",
        "transport": "tls",
        "credentials": {"username": "out-user", "password": "out-pass-secret"},
    },
}
CLIENT_DATA = {
    "dynamic_variables": {"user_name": "Ana", "order_id": 42},
    "conversation_config_override": {
        "agent": {"first_message": "Hi {{user_name}}, about order {{order_id}}"}
    },
    "user_id": "customer-7",
}
TERMINAL = {"done", "failed"}


async def _agent(client: httpx.AsyncClient, name: str = "Caller") -> str:
    r = await client.post("/v1/convai/agents/create", json={"name": name, "conversation_config": {}})
    assert r.status_code == 200, r.text
    agent_id: str = r.json()["agent_id"]
    return agent_id


async def _numbers(client: httpx.AsyncClient) -> tuple[str, str]:
    twilio = (await client.post("/v1/convai/phone-numbers", json=TWILIO)).json()["phone_number_id"]
    sip = (await client.post("/v1/convai/phone-numbers", json=SIP)).json()["phone_number_id"]
    return twilio, sip


async def _register_webhook(client: httpx.AsyncClient, url: str, events: list[str]) -> str:
    r = await client.post(
        "/v1/workspace/webhooks",
        json={"settings": {"auth_type": "hmac", "name": "post-call", "webhook_url": url}},
    )
    created = r.json()
    r = await client.patch(
        "/v1/convai/settings",
        json={"webhooks": {"post_call_webhook_id": created["webhook_id"], "events": events}},
    )
    assert r.status_code == 200, r.text
    secret: str = created["webhook_secret"]
    return secret


async def _dial(
    client: httpx.AsyncClient, provider: str, agent_id: str, phone_id: str, to_number: str, **extra: Any
) -> httpx.Response:
    path = "/v1/convai/twilio/outbound-call" if provider == "twilio" else "/v1/convai/sip-trunk/outbound-call"
    body = {"agent_id": agent_id, "agent_phone_number_id": phone_id, "to_number": to_number, **extra}
    return await client.post(path, json=body)


async def _status(client: httpx.AsyncClient, conversation_id: str) -> str:
    status: str = (await client.get(f"/v1/convai/conversations/{conversation_id}")).json()["status"]
    return status


async def test_phone_numbers_crud_and_secrets_not_echoed(calls_client: httpx.AsyncClient) -> None:
    c = calls_client
    agent_id = await _agent(c, "Support bot")
    twilio_id, sip_id = await _numbers(c)
    assert twilio_id.startswith("phnum_") and sip_id.startswith("phnum_")

    listed = (await c.get("/v1/convai/phone-numbers")).json()
    assert isinstance(listed, list) and len(listed) == 2
    text = json.dumps(listed)
    for secret in ("twilio-auth-token-xyz", "in-pass-secret", "out-pass-secret", '"token"', '"password"'):
        assert secret not in text
    sip = (await c.get(f"/v1/convai/phone-numbers/{sip_id}")).json()
    assert sip["provider"] == "sip_trunk" and sip["assigned_agent"] is None
    assert sip["outbound_trunk"]["has_auth_credentials"] is True
    assert sip["outbound_trunk"]["username"] == "out-user"
    assert sip["outbound_trunk"]["address"] == "sip.example.com"
    assert sip["inbound_trunk"]["username"] == "in-user"
    assert sip["livekit_stack"] == "standard"

    secrets = (await c.get(f"/_sim/phone-numbers/{twilio_id}/secrets")).json()
    assert (secrets["sid"], secrets["token"]) == (TWILIO["sid"], "twilio-auth-token-xyz")
    secrets = (await c.get(f"/_sim/phone-numbers/{sip_id}/secrets")).json()
    assert secrets["outbound_credentials"] == {"username": "out-user", "password": "out-pass-secret"}
    assert secrets["inbound_credentials"]["password"] == "in-pass-secret"

    r = await c.patch(f"/v1/convai/phone-numbers/{twilio_id}", json={"agent_id": agent_id, "label": "New"})
    assert r.status_code == 200
    assert r.json()["assigned_agent"]["agent_id"] == agent_id
    assert r.json()["assigned_agent"]["agent_name"] == "Support bot"
    assert r.json()["label"] == "New" and "token" not in r.json()
    assert [
        p["phone_number_id"] for p in (await c.get(f"/v1/convai/phone-numbers?agent_id={agent_id}")).json()
    ] == [twilio_id]
    assert [
        p["phone_number_id"] for p in (await c.get("/v1/convai/phone-numbers?provider=sip_trunk")).json()
    ] == [sip_id]
    r = await c.patch(f"/v1/convai/phone-numbers/{twilio_id}", json={"agent_id": "agent_missing"})
    assert r.status_code == 404 and r.json()["detail"]["status"] == "agent_not_found"
    r = await c.patch(f"/v1/convai/phone-numbers/{twilio_id}", json={"agent_id": None})
    assert r.json()["assigned_agent"] is None

    bad = {k: v for k, v in TWILIO.items() if k != "token"}
    assert (await c.post("/v1/convai/phone-numbers", json=bad)).status_code == 422
    assert (await c.delete(f"/v1/convai/phone-numbers/{sip_id}")).status_code == 200
    r = await c.get(f"/v1/convai/phone-numbers/{sip_id}")
    assert r.status_code == 404 and r.json()["detail"]["status"] == "phone_number_not_found"


async def test_dial_both_providers_validation_and_refusal(calls_client: httpx.AsyncClient) -> None:
    c = calls_client
    agent_id = await _agent(c)
    twilio_id, sip_id = await _numbers(c)

    r = await _dial(
        c, "twilio", agent_id, twilio_id, "+15557770001", conversation_initiation_client_data=CLIENT_DATA
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"success", "message", "conversation_id", "callSid"}
    assert body["success"] is True and body["message"] == "Success"
    assert body["conversation_id"].startswith("conv_") and body["callSid"].startswith("CA")
    conv = (await c.get(f"/v1/convai/conversations/{body['conversation_id']}")).json()
    assert conv["agent_id"] == agent_id and conv["status"] in {"initiated", "in-progress"}
    cicd = conv["conversation_initiation_client_data"]
    assert cicd["dynamic_variables"] == CLIENT_DATA["dynamic_variables"]
    assert (
        cicd["conversation_config_override"]["agent"]["first_message"]
        == "Hi {{user_name}}, about order {{order_id}}"
    )
    assert conv["metadata"]["phone_call"]["type"] == "twilio"
    assert conv["metadata"]["phone_call"]["call_sid"] == body["callSid"]

    r = await _dial(c, "sip", agent_id, sip_id, "+15557770002")
    sip_body = r.json()
    assert set(sip_body) == {"success", "message", "conversation_id", "sip_call_id"}
    assert sip_body["success"] is True and sip_body["sip_call_id"]

    r = await _dial(c, "twilio", agent_id, sip_id, "+15557770003")
    assert r.status_code == 400 and r.json()["detail"]["status"] == "phone_number_provider_mismatch"
    r = await _dial(c, "twilio", "agent_nope", twilio_id, "+15557770003")
    assert r.status_code == 404 and r.json()["detail"]["status"] == "agent_not_found"
    r = await _dial(c, "sip", agent_id, "phnum_nope", "+15557770003")
    assert r.status_code == 404 and r.json()["detail"]["status"] == "phone_number_not_found"
    r = await _dial(c, "twilio", agent_id, twilio_id, "5557770003")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "to_number"]
    r = await c.post(
        "/v1/convai/twilio/outbound-call", json={"agent_id": agent_id, "agent_phone_number_id": twilio_id}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "to_number"]

    r = await _dial(c, "twilio", agent_id, twilio_id, "+15557770000")
    assert r.json() == {
        "success": False,
        "message": r.json()["message"],
        "conversation_id": None,
        "callSid": None,
    }
    r = await _dial(c, "sip", agent_id, sip_id, "+15557770000")
    assert r.json()["success"] is False and r.json()["sip_call_id"] is None

    calls = (await c.get("/_sim/calls")).json()
    assert len(calls["calls"]) == 2 and len(calls["refusals"]) == 2
    assert calls["calls"][0]["request"]["conversation_initiation_client_data"] == CLIENT_DATA
    stats = (await c.get("/_sim/calls/stats")).json()
    assert stats["dials_by_number"] == {"+15557770001": 1, "+15557770002": 1}
    assert stats["refused"] == 2


async def test_lifecycle_by_last_digit_and_signed_webhooks(
    calls_client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    c = calls_client
    secret = await _register_webhook(c, receiver.url, ["transcript", "call_initiation_failure"])
    agent_id = await _agent(c)
    twilio_id, sip_id = await _numbers(c)
    conv: dict[tuple[str, str], str] = {}
    for provider, phone_id in (("twilio", twilio_id), ("sip", sip_id)):
        for digit in "0456789":
            r = await _dial(
                c,
                provider,
                agent_id,
                phone_id,
                f"+1555888123{digit}",
                conversation_initiation_client_data=CLIENT_DATA,
            )
            assert r.json()["success"] is True
            conv[(provider, digit)] = r.json()["conversation_id"]

    async def all_terminal() -> bool:
        statuses = [await _status(c, cid) for cid in conv.values()]
        return all(s in TERMINAL for s in statuses)

    await wait_until(all_terminal)
    # 12 calls deliver a webhook (digit 9 never does); wait for them to arrive.
    await wait_until(lambda: _count(receiver, 12))

    for provider in ("twilio", "sip"):
        for digit in "04":
            got = receiver.for_conversation(conv[(provider, digit)])
            assert [g["json"]["type"] for g in got] == ["post_call_transcription"]
            data = got[0]["json"]["data"]
            assert data["status"] == "done"
            assert data["analysis"]["call_successful"] == "success"
            assert data["analysis"]["transcript_summary"]
            assert data["analysis"]["data_collection_results"]["outcome"]["value"] == "appointment_confirmed"
            assert data["transcript"][0]["message"] == "Hi Ana, about order 42"
            assert data["conversation_initiation_client_data"]["dynamic_variables"]["user_name"] == "Ana"
            expected_type = "twilio" if provider == "twilio" else "sip_trunking"
            assert data["metadata"]["phone_call"]["type"] == expected_type
        for digit, reason in (("5", "busy"), ("6", "no-answer"), ("8", "unknown")):
            cid = conv[(provider, digit)]
            got = receiver.for_conversation(cid)
            assert [g["json"]["type"] for g in got] == ["call_initiation_failure"]
            data = got[0]["json"]["data"]
            assert data["failure_reason"] == reason and data["agent_id"] == agent_id
            assert data["metadata"]["type"] == ("twilio" if provider == "twilio" else "sip")
            assert await _status(c, cid) == "failed"
        voicemail = receiver.for_conversation(conv[(provider, "7")])
        assert [g["json"]["type"] for g in voicemail] == ["post_call_transcription"]
        vm = voicemail[0]["json"]["data"]
        assert vm["metadata"]["termination_reason"] == "voicemail_detected"
        assert vm["analysis"]["data_collection_results"]["outcome"]["value"] == "voicemail"
        # Digit 9: completed, but the webhook is lost.
        lost = conv[(provider, "9")]
        assert receiver.for_conversation(lost) == []
        lost_conv = (await c.get(f"/v1/convai/conversations/{lost}")).json()
        assert lost_conv["status"] == "done"
        assert lost_conv["analysis"]["data_collection_results"]["outcome"]["value"] == "appointment_confirmed"

    for got in receiver.received:
        header = got["headers"]["elevenlabs-signature"]
        assert verify_signature(header, got["raw"], secret)
        assert not verify_signature(header, got["raw"], "wrong-secret")
        assert got["path"] == "/hooks/elevenlabs"
        assert isinstance(got["json"]["event_timestamp"], int)

    # Every conversation (and every phone number) matches the upstream response schema.
    for cid in conv.values():
        body = (await c.get(f"/v1/convai/conversations/{cid}")).json()
        assert openapi.validate_component("GetConversationResponseModel", body, []) == []
    for phone in (await c.get("/v1/convai/phone-numbers")).json():
        model = (
            "GetPhoneNumberTwilioResponseModel"
            if phone["provider"] == "twilio"
            else "GetPhoneNumberSIPTrunkResponseModel"
        )
        assert openapi.validate_component(model, phone, []) == []

    deliveries = (await c.get("/_sim/webhooks/deliveries")).json()["deliveries"]
    assert len(deliveries) == 12 and all(d["status_code"] == 200 for d in deliveries)
    assert {d["url"] for d in deliveries} == {receiver.url}

    listed = (await c.get("/v1/convai/conversations", params={"agent_id": agent_id, "page_size": 10})).json()
    assert len(listed["conversations"]) == 10 and listed["has_more"] is True
    rest = (
        await c.get(
            "/v1/convai/conversations", params={"agent_id": agent_id, "cursor": listed["next_cursor"]}
        )
    ).json()
    ids = {s["conversation_id"] for s in listed["conversations"] + rest["conversations"]}
    assert ids == set(conv.values()) and rest["has_more"] is False
    summary = listed["conversations"][0]
    assert {"agent_id", "conversation_id", "start_time_unix_secs", "status", "call_successful"} <= set(
        summary
    )
    assert (await c.get("/v1/convai/conversations", params={"agent_id": "agent_other"})).json()[
        "conversations"
    ] == []
    future = (await c.get("/v1/convai/conversations", params={"call_start_after_unix": 4_000_000_000})).json()
    assert future["conversations"] == []


async def _count(receiver: WebhookReceiver, n: int) -> bool:
    return len(receiver.received) >= n


async def test_status_progression_runtime_config_and_audio(
    calls_client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    c = calls_client
    secret = await _register_webhook(c, receiver.url, ["transcript", "audio"])
    r = await c.post("/_sim/config", json={"ring_ms": 30, "call_duration_ms": 300, "processing_ms": 100})
    assert r.json()["call_duration_ms"] == 300
    agent_id = await _agent(c)
    twilio_id, _ = await _numbers(c)
    cid = (await _dial(c, "twilio", agent_id, twilio_id, "+15551230001")).json()["conversation_id"]
    seen: list[str] = []

    async def record_status() -> bool:
        status = await _status(c, cid)
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == "done"

    await wait_until(record_status)
    assert seen[0] == "initiated" and "in-progress" in seen and seen[-1] == "done"
    assert seen == sorted(seen, key=["initiated", "in-progress", "processing", "done"].index)
    await wait_until(lambda: _count(receiver, 2))
    assert [g["json"]["type"] for g in receiver.received] == ["post_call_transcription", "post_call_audio"]
    audio = receiver.received[1]
    assert set(audio["json"]["data"]) == {"agent_id", "conversation_id", "full_audio"}
    assert verify_signature(audio["headers"]["elevenlabs-signature"], audio["raw"], secret)
    call = (await c.get("/_sim/calls")).json()["calls"][0]
    assert call["status"] == "done" and call["outcome"] == "completed"
    assert call["ended_at"] >= call["started_at"]


async def test_concurrency_limit_429_and_stats(calls_client: httpx.AsyncClient) -> None:
    c = calls_client
    await c.post("/_sim/config", json={"max_concurrent_calls": 2, "call_duration_ms": 400})
    agent_id = await _agent(c)
    twilio_id, sip_id = await _numbers(c)
    assert (await _dial(c, "twilio", agent_id, twilio_id, "+15550000011")).status_code == 200
    assert (await _dial(c, "sip", agent_id, sip_id, "+15550000012")).status_code == 200
    r = await _dial(c, "twilio", agent_id, twilio_id, "+15550000013")
    assert r.status_code == 429 and "retry-after" not in r.headers
    assert r.json()["detail"]["status"] == "too_many_concurrent_requests"
    stats = (await c.get("/_sim/calls/stats")).json()
    assert stats["in_progress"] == 2 and stats["rate_limited"] == 1

    async def idle() -> bool:
        return bool((await c.get("/_sim/calls/stats")).json()["in_progress"] == 0)

    await wait_until(idle)
    assert (await _dial(c, "twilio", agent_id, twilio_id, "+15550000013")).status_code == 200
    assert (await _dial(c, "twilio", agent_id, twilio_id, "+15550000011")).status_code == 200
    stats = (await c.get("/_sim/calls/stats")).json()
    assert stats["dials_by_number"] == {"+15550000011": 2, "+15550000012": 1, "+15550000013": 1}
    assert stats["max_concurrent_observed"] == 2
    assert stats["total_dials"] == 4


async def test_redelivery_and_retries(calls_client: httpx.AsyncClient, receiver: WebhookReceiver) -> None:
    c = calls_client
    await c.post(
        "/_sim/config", json={"webhook_url": receiver.url, "webhook_secret": "s3cret", "webhook_retries": 2}
    )
    agent_id = await _agent(c)
    twilio_id, _ = await _numbers(c)
    receiver.statuses = [500, 503]  # two failures, then the retry succeeds
    cid = (await _dial(c, "twilio", agent_id, twilio_id, "+15551110005")).json()["conversation_id"]
    await wait_until(lambda: _count(receiver, 3))
    deliveries = (await c.get("/_sim/webhooks/deliveries", params={"conversation_id": cid})).json()[
        "deliveries"
    ]
    assert [(d["attempt"], d["status_code"]) for d in deliveries] == [(1, 500), (2, 503), (3, 200)]
    assert all(d["type"] == "call_initiation_failure" for d in deliveries)
    assert verify_signature(
        receiver.received[0]["headers"]["elevenlabs-signature"], receiver.received[0]["raw"], "s3cret"
    )

    r = await c.post(f"/_sim/webhooks/redeliver/{cid}")
    assert r.status_code == 200 and r.json()["delivery"]["replay"] is True
    assert len(receiver.received) == 4
    original, replay = receiver.received[2], receiver.received[3]
    assert replay["raw"] == original["raw"]
    assert replay["headers"]["elevenlabs-signature"] == original["headers"]["elevenlabs-signature"]
    assert (await c.post("/_sim/webhooks/redeliver/conv_unknown")).status_code == 404


async def test_a_webhook_with_retries_enabled_gets_transcriptions_again_on_transient_failures(
    calls_client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    """ElevenLabs' Webhooks docs, "Retries": off by default; with `retry_enabled`, a failed
    post_call_transcription delivery is retried up to 5 times (immediately, 30 s, 2, 8, 30 min)
    after a 5xx, 429 or 408; never after another 4xx; call_initiation_failure is never retried."""
    c = calls_client
    await _register_webhook(c, receiver.url, ["transcript", "call_initiation_failure"])
    [hook] = (await c.get("/v1/workspace/webhooks")).json()["webhooks"]
    await c.post("/_sim/config", json={"webhook_retry_delays_ms": [0, 20, 40, 60, 80]})
    agent_id = await _agent(c)
    twilio_id, _ = await _numbers(c)

    async def deliveries(cid: str) -> list[tuple[str, int | None]]:
        found = (await c.get("/_sim/webhooks/deliveries", params={"conversation_id": cid})).json()
        return [(d["type"], d["status_code"]) for d in found["deliveries"]]

    async def settled(number: str) -> bool:
        calls = (await c.get("/_sim/calls", params={"to_number": number})).json()["calls"]
        return bool(calls) and all(call["settled"] for call in calls)

    async def dial_and_settle(number: str, statuses: list[int]) -> list[tuple[str, int | None]]:
        receiver.statuses = list(statuses)
        cid = (await _dial(c, "twilio", agent_id, twilio_id, number)).json()["conversation_id"]
        await wait_until(lambda: settled(number))
        return await deliveries(cid)

    # Off by default: one delivery, failed.
    assert await dial_and_settle("+15551120001", [503]) == [("post_call_transcription", 503)]
    patched = await c.patch(
        f"/v1/workspace/webhooks/{hook['webhook_id']}",
        json={"name": hook["name"], "is_disabled": False, "retry_enabled": True},
    )
    assert patched.status_code == 200 and patched.json() == {"status": "ok"}
    transcription = "post_call_transcription"
    assert await dial_and_settle("+15551120011", [503, 408, 429, 500]) == [
        (transcription, 503),
        (transcription, 408),
        (transcription, 429),
        (transcription, 500),
        (transcription, 200),
    ]
    # A 4xx other than 408/429 is the receiver's refusal: not retried.
    assert await dial_and_settle("+15551120021", [404]) == [(transcription, 404)]
    # Busy: call_initiation_failure, which ElevenLabs does not retry.
    assert await dial_and_settle("+15551120005", [503]) == [("call_initiation_failure", 503)]
    # Six failures: the first delivery and five retries, then ElevenLabs gives up.
    assert await dial_and_settle("+15551120031", [500] * 7) == [(transcription, 500)] * 6
    # A disabled webhook gets nothing.
    await c.patch(
        f"/v1/workspace/webhooks/{hook['webhook_id']}", json={"name": hook["name"], "is_disabled": True}
    )
    listed = (await c.get("/v1/workspace/webhooks")).json()["webhooks"]
    assert [w["is_disabled"] for w in listed] == [True]
    assert await dial_and_settle("+15551120041", []) == []
    receiver.statuses = []


@pytest.mark.timeout(30)
def test_over_real_http_with_direct_webhook_config(receiver: WebhookReceiver) -> None:
    settings = SimSettings(api_key=API_KEY, ring_ms=10, call_duration_ms=30, processing_ms=5)
    with (
        run_in_thread(settings) as base_url,
        httpx.Client(base_url=base_url, headers={"xi-api-key": API_KEY}) as c,
    ):
        c.post("/_sim/config", json={"webhook_url": receiver.url, "webhook_secret": "abc"})
        agent_id = c.post("/v1/convai/agents/create", json={"conversation_config": {}}).json()["agent_id"]
        phone_id = c.post("/v1/convai/phone-numbers", json=SIP).json()["phone_number_id"]
        r = c.post(
            "/v1/convai/sip-trunk/outbound-call",
            json={"agent_id": agent_id, "agent_phone_number_id": phone_id, "to_number": "+4930123451"},
        )
        cid = r.json()["conversation_id"]
        deadline = time.monotonic() + 5
        while not receiver.received:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        got = receiver.received[0]
        assert (
            got["json"]["type"] == "post_call_transcription" and got["json"]["data"]["conversation_id"] == cid
        )
        assert verify_signature(got["headers"]["elevenlabs-signature"], got["raw"], "abc")
        assert c.get(f"/v1/convai/conversations/{cid}").json()["status"] == "done"


async def test_reset_cancels_calls_and_env_settings(
    calls_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = calls_client
    await c.post("/_sim/config", json={"call_duration_ms": 5000, "webhook_url": "http://127.0.0.1:9/x"})
    agent_id = await _agent(c)
    twilio_id, _ = await _numbers(c)
    assert (await _dial(c, "twilio", agent_id, twilio_id, "+15552220001")).status_code == 200
    assert (await c.get("/_sim/calls/stats")).json()["in_progress"] == 1
    await c.post("/_sim/reset")
    stats = (await c.get("/_sim/calls/stats")).json()
    assert stats == {
        "dials_by_number": {},
        "max_concurrent_observed": 0,
        "in_progress": 0,
        "total_dials": 0,
        "refused": 0,
        "carrier_refused": 0,
        "rate_limited": 0,
    }
    config = (await c.get("/_sim/config")).json()
    assert config["webhook_url"] is None and config["call_duration_ms"] == 60
    assert (await c.post("/_sim/config", json={"bogus": 1})).status_code == 422

    monkeypatch.setenv("ELEVENLABS_SIM_MAX_CONCURRENT_CALLS", "3")
    monkeypatch.setenv("ELEVENLABS_SIM_CALL_DURATION_MS", "250")
    monkeypatch.setenv("ELEVENLABS_SIM_WEBHOOK_RETRIES", "1")
    settings = SimSettings()
    assert (settings.max_concurrent_calls, settings.call_duration_ms, settings.webhook_retries) == (3, 250, 1)
    assert (settings.ring_ms, settings.refuse_number_suffix) == (200, "0000")


async def test_sip_trunk_import_validates_trunk_configs_against_the_spec(
    calls_client: httpx.AsyncClient,
) -> None:
    body = {
        "provider": "sip_trunk",
        "phone_number": "+390620199200",
        "label": "ACL line",
        "inbound_trunk_config": {"allowed_addresses": ["203.0.113.0/24"], "media_encryption": "required"},
        "outbound_trunk_config": {"address": "sip.carrier.example", "enabled_codecs": ["PCMU/8000"]},
    }
    r = await calls_client.post("/v1/convai/phone-numbers", json=body)
    assert r.status_code == 200, r.text
    phone = (await calls_client.get(f"/v1/convai/phone-numbers/{r.json()['phone_number_id']}")).json()
    assert phone["inbound_trunk"]["allowed_addresses"] == ["203.0.113.0/24"]
    assert phone["inbound_trunk"]["media_encryption"] == "required"
    assert phone["outbound_trunk"]["enabled_codecs"] == ["PCMU/8000"]

    for bad in (
        {"inbound_trunk_config": {"credentials": {"password": "pw"}}},  # username is required
        {"inbound_trunk_config": {"media_encryption": "sometimes"}},
        {"outbound_trunk_config": {"address": "h", "enabled_codecs": ["OPUS/48000"]}},
        {"outbound_trunk_config": {"transport": "tls"}},  # address is required
    ):
        r = await calls_client.post("/v1/convai/phone-numbers", json=body | bad)
        assert r.status_code == 422, (bad, r.text)


async def test_carrier_refusals_answers_and_missing_variables(
    calls_client: httpx.AsyncClient, receiver: WebhookReceiver
) -> None:
    c = calls_client
    await _register_webhook(c, receiver.url, ["transcript", "call_initiation_failure"])
    agent_id = await _agent(c)
    twilio_id, sip_id = await _numbers(c)
    authenticate = "HTTP 401 error: Unable to create record: Authenticate"
    await c.post(
        "/_sim/config",
        json={
            "dial_refusals": {twilio_id: authenticate},
            "carrier_answers": {
                "+15558881001": {"sip_status_code": 486},
                "+15558881002": {"sip_status_code": 404, "call_status": "failed"},
            },
        },
    )
    refused = (await _dial(c, "twilio", agent_id, twilio_id, "+15558881000")).json()
    assert refused == {"success": False, "message": authenticate, "conversation_id": None, "callSid": None}
    assert (await c.get("/_sim/calls/stats")).json()["carrier_refused"] == 1
    await c.post("/_sim/config", json={"dial_refusals": None})

    sip = (await _dial(c, "sip", agent_id, sip_id, "+15558881001")).json()["conversation_id"]
    twilio = (await _dial(c, "twilio", agent_id, twilio_id, "+15558881002")).json()["conversation_id"]
    await wait_until(lambda: _count(receiver, 2))
    sip_data = receiver.for_conversation(sip)[0]["json"]["data"]
    assert sip_data["failure_reason"] == "unknown"
    assert sip_data["metadata"]["type"] == "sip"
    assert (sip_data["metadata"]["body"]["sip_status_code"], sip_data["metadata"]["body"]["sip_status"]) == (
        486,
        "Busy Here",
    )
    twilio_body = receiver.for_conversation(twilio)[0]["json"]["data"]["metadata"]["body"]
    assert (twilio_body["CallStatus"], twilio_body["SipResponseCode"]) == ("failed", "404")

    # An agent needing a variable nobody supplies: the phone rings, then the conversation fails.
    r = await c.patch(
        f"/v1/convai/agents/{agent_id}",
        json={
            "conversation_config": {
                "agent": {"first_message": "Hi {{customer_name}}, about order {{order_id}}"}
            }
        },
    )
    assert r.status_code == 200, r.text
    cid = (
        await _dial(
            c,
            "sip",
            agent_id,
            sip_id,
            "+15558881003",
            conversation_initiation_client_data={"dynamic_variables": {"customer_name": "Ana"}},
        )
    ).json()["conversation_id"]
    await wait_until(lambda: _count(receiver, 3))
    failed = receiver.for_conversation(cid)[0]["json"]
    assert failed["type"] == "post_call_transcription" and failed["data"]["status"] == "failed"
    assert failed["data"]["metadata"]["termination_reason"] == (
        "Missing required dynamic variables in first message: {'order_id'}"
    )


async def test_the_analysis_answers_the_agents_evaluation_criteria_and_data_collection(
    calls_client: httpx.AsyncClient,
) -> None:
    c = calls_client
    r = await c.post(
        "/v1/convai/agents/create",
        json={
            "name": "Analysed",
            "conversation_config": {},
            "platform_settings": {
                "evaluation": {
                    "criteria": [{"id": "goal", "name": "Goal", "conversation_goal_prompt": "Book"}]
                },
                "data_collection": {"visit_date": {"type": "string", "description": "The date booked"}},
            },
        },
    )
    assert r.status_code == 200, r.text
    agent_id = r.json()["agent_id"]
    twilio_id, _ = await _numbers(c)
    cid = (await _dial(c, "twilio", agent_id, twilio_id, "+15558881230")).json()["conversation_id"]

    async def done() -> bool:
        return await _status(c, cid) in TERMINAL

    await wait_until(done)
    analysis = (await c.get(f"/v1/convai/conversations/{cid}")).json()["analysis"]
    assert analysis["evaluation_criteria_results"] == {
        "goal": {"criteria_id": "goal", "result": "success", "rationale": "Simulated as the call went."}
    }
    collected = analysis["data_collection_results"]
    assert collected["visit_date"]["value"] == "visit_date of +15558881230"
    assert collected["outcome"]["value"] == "appointment_confirmed"
