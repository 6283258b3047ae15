"""A long call over the whole stack: ElevenLabs (the simulator) delivers a multi-megabyte transcript
and, chunked, several megabytes of base64 audio; both are answered 200 and the whole transcript
reaches the call's read model (`GET /api/v1/calls/{conversation_id}`), though Kafka refuses
messages over ~1 MiB."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devinfra.stack import SANDBOX_API_KEY
from tests.e2e.conftest import poll

PADDING_TURNS = 1200  # about 2 KB each: a transcript of about 2.5 MB
AUDIO_BYTES = 6 * 1024 * 1024  # 8 MiB of base64


@pytest.fixture
def long_calls(sim: httpx.Client) -> Iterator[None]:
    """Audio deliveries switched on upstream (as a user would in ElevenLabs), long transcripts and
    big audio in the simulator; all restored afterwards."""
    upstream = {"xi-api-key": SANDBOX_API_KEY}
    hooks = sim.get("/v1/convai/settings", headers=upstream).json()["webhooks"]
    with_audio = {**hooks, "events": [*hooks["events"], "audio"]}
    assert (
        sim.patch("/v1/convai/settings", json={"webhooks": with_audio}, headers=upstream).status_code == 200
    )
    sim.post("/_sim/config", json={"transcript_padding_turns": PADDING_TURNS, "audio_bytes": AUDIO_BYTES})
    try:
        yield
    finally:
        sim.post("/_sim/config", json={"transcript_padding_turns": 0, "audio_bytes": 0})
        sim.patch("/v1/convai/settings", json={"webhooks": hooks}, headers=upstream)


def test_a_long_calls_transcript_reaches_the_read_model_and_its_audio_is_acknowledged(
    api: httpx.Client, sim: httpx.Client, long_calls: None
) -> None:
    agent = api.post("/api/v1/agents", json={"name": "Long talker", "first_message": "Hi"}).json()["agent_id"]
    phone = api.post(
        "/api/v1/phone-numbers",
        json={
            "phone_number": f"+1415555{uuid.uuid4().int % 9000 + 1000:04d}",
            "label": "Long calls",
            "sid": "AC" + "2" * 32,
            "token": "tw-token",
        },
    ).json()["phone_number_id"]
    to_number = f"+1415555{uuid.uuid4().int % 900 + 100:03d}1"  # last digit 1: answered, completed
    placed = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={"agent_id": agent, "agent_phone_number_id": phone, "to_number": to_number},
    )
    assert placed.status_code == 200, placed.text
    conversation_id = placed.json()["conversation_id"]

    call: dict[str, Any] = poll(
        lambda: (c := api.get(f"/api/v1/calls/{conversation_id}").json()).get("transcript") and c, timeout=90
    )
    upstream = sim.get(f"/v1/convai/conversations/{conversation_id}", headers={"xi-api-key": SANDBOX_API_KEY})
    sent = upstream.json()["transcript"]
    assert len(sent) == PADDING_TURNS + 3
    assert call["transcript"] == [
        {"role": t["role"], "message": t["message"], "time_in_call_secs": t["time_in_call_secs"]}
        for t in sent
    ]
    assert len(json.dumps(call["transcript"])) > 2 * 1024 * 1024
    assert call["status"] == "completed"

    deliveries = poll(
        lambda: (
            (
                d := sim.get("/_sim/webhooks/deliveries", params={"conversation_id": conversation_id}).json()[
                    "deliveries"
                ]
            )
            and len(d) == 2
            and d
        )
    )
    assert {d["type"]: d["status_code"] for d in deliveries} == {
        "post_call_transcription": 200,
        "post_call_audio": 200,
    }
