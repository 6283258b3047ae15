"""The post-call webhook endpoint over HTTP, with the real database and Kafka behind it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tool_webhooks import domain, handlers

from .conftest import CONFIGURED_SECRET, Harness

pytestmark = pytest.mark.integration


def _conv() -> str:
    return f"conv_{uuid.uuid4().hex[:12]}"


def transcription(conversation_id: str, **extra: Any) -> bytes:
    payload = {
        "type": "post_call_transcription",
        "event_timestamp": 1_764_000_000,
        "data": {
            "agent_id": "agent_abc",
            "conversation_id": conversation_id,
            "status": "done",
            "transcript": [{"role": "user", "message": "my card number is private", "time_in_call_secs": 1}],
            "metadata": {"call_duration_secs": 61, "termination_reason": "end_call tool was called."},
            "analysis": {
                "call_successful": "success",
                "transcript_summary": "The customer agreed.",
                "data_collection_results": {
                    "outcome": {"data_collection_id": "outcome", "value": "booked", "rationale": "..."}
                },
                "evaluation_criteria_results": {
                    "polite": {"criteria_id": "polite", "result": "success", "rationale": "Greeted."}
                },
                "new_upstream_field": 1,
            },
            "has_audio": True,
            **extra,
        },
    }
    return json.dumps(payload).encode()


def failure(conversation_id: str) -> bytes:
    return json.dumps(
        {
            "type": "call_initiation_failure",
            "event_timestamp": 1_764_000_100,
            "data": {
                "agent_id": "agent_abc",
                "conversation_id": conversation_id,
                "failure_reason": "no-answer",
                "metadata": {"type": "twilio", "body": {"CallStatus": "no-answer"}},
            },
        }
    ).encode()


async def test_signed_transcription_is_published_once_and_replays_are_duplicates(harness: Harness) -> None:
    conversation_id = _conv()
    body = transcription(conversation_id)
    signature = domain.sign("wsec_configured_by_hand", body, int(time.time()))

    response = await harness.post(body, signature)
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    message_id = domain.post_call_message_id("post_call_transcription", conversation_id)
    event = await harness.wait_for(message_id=message_id)
    assert {k: v for k, v in event.items() if k not in {"occurred_at", "correlation_id"}} == {
        "message_id": message_id,
        "type": "post_call_webhook.received",
        "version": 1,
        "causation_id": None,
        "webhook_type": "post_call_transcription",
        "conversation_id": conversation_id,
        "agent_id": "agent_abc",
        "event_timestamp": 1_764_000_000,
        "conversation_status": "done",
        "call_duration_secs": 61,
        "termination_reason": "end_call tool was called.",
        "failure_reason": None,
        "carrier": None,
        "sip_status_code": None,
        "carrier_call_status": None,
        "call_successful": "success",
        "transcript_summary": "The customer agreed.",
        "data_collection": {"outcome": "booked"},
        "evaluation_criteria": {"polite": {"result": "success", "rationale": "Greeted."}},
    }
    assert "transcript" not in event

    replay = await harness.post(body, signature)
    assert (replay.status_code, replay.json()) == (200, {"status": "duplicate"})
    # Re-signed later (as an upstream retry would be): still the same delivery.
    resigned = await harness.post_signed(body)
    assert resigned.json() == {"status": "duplicate"}

    # A later webhook of the same conversation goes through the same outbox order and partition,
    # so once it arrives any second copy of the first would have arrived too.
    assert (await harness.post_signed(failure(conversation_id))).json() == {"status": "accepted"}
    await harness.wait_for(message_id=domain.post_call_message_id("call_initiation_failure", conversation_id))
    assert len(harness.matching(message_id=message_id)) == 1


async def test_call_initiation_failure_is_mapped(harness: Harness) -> None:
    conversation_id = _conv()
    response = await harness.post_signed(failure(conversation_id))
    assert response.status_code == 200
    event = await harness.wait_for(conversation_id=conversation_id, webhook_type="call_initiation_failure")
    assert event["failure_reason"] == "no-answer"
    assert event["agent_id"] == "agent_abc"
    assert event["event_timestamp"] == 1_764_000_100
    assert (event["conversation_status"], event["call_duration_secs"], event["data_collection"]) == (
        None,
        None,
        {},
    )


def _rejections(body: bytes, now: int) -> dict[str, tuple[bytes, str | None]]:
    good = domain.sign("wsec_configured_by_hand", body, now)
    return {
        "forged": (body, f"t={now},v0={'0' * 64}"),
        "wrong secret": (body, domain.sign("not-the-secret", body, now)),
        "stale (31 min)": (body, domain.sign("wsec_configured_by_hand", body, now - 31 * 60)),
        "future (10 min)": (body, domain.sign("wsec_configured_by_hand", body, now + 10 * 60)),
        "missing header": (body, None),
        "malformed header": (body, "v0=abc;t=nope"),
        "altered body": (body.replace(b"booked", b"refund"), good),
    }


async def test_bad_signatures_are_401_and_have_no_effect(harness: Harness) -> None:
    conversation_id = _conv()
    body = transcription(conversation_id)
    message_id = domain.post_call_message_id("post_call_transcription", conversation_id)
    for case, (sent, signature) in _rejections(body, int(time.time())).items():
        response = await harness.post(sent, signature)
        assert response.status_code == 401, case
        answer = response.json()
        assert (answer["success"], answer["error"]) == (False, "Invalid signature"), case
        assert answer["detail"], case
        assert not await harness.claimed(message_id), case

    # Same conversation (same key, same outbox order): once this arrives nothing else can be pending.
    await harness.post_signed(failure(conversation_id))
    await harness.wait_for(message_id=domain.post_call_message_id("call_initiation_failure", conversation_id))
    assert harness.matching(message_id=message_id) == []


async def test_post_call_audio_is_ignored(harness: Harness) -> None:
    conversation_id = _conv()
    body = json.dumps(
        {
            "type": "post_call_audio",
            "event_timestamp": 1_764_000_000,
            "data": {"agent_id": "a", "conversation_id": conversation_id, "full_audio": "SUQz" * 1000},
        }
    ).encode()
    response = await harness.post_signed(body)
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert not await harness.claimed(domain.post_call_message_id("post_call_audio", conversation_id))


async def test_bodies_over_the_limit_are_413_before_being_read(harness: Harness) -> None:
    """A tiny limit on a second app over the same container (the session's is 256 MiB)."""
    app = FastAPI()
    app.include_router(
        handlers.make_router(harness.container.service, max_body_bytes=1024, spool_memory_bytes=0)
    )
    body = b'{"type":"post_call_audio","data":{"x":"' + b"a" * 2048 + b'"}}'
    signature = domain.sign(CONFIGURED_SECRET, body, int(time.time()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://small") as client:
        for content in (body, _chunks(body)):  # Content-Length, then chunked
            response = await client.post(
                "/api/v1/webhook/elevenlabs/post-call",
                content=content,
                headers={domain.SIGNATURE_HEADER: signature},
            )
            assert response.status_code == 413
            assert response.json()["error"] == "Payload too large"
            assert response.headers["connection"] == "close"


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(body), 100):
        yield body[i : i + 100]
