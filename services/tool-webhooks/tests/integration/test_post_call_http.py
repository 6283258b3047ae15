"""The post-call webhook over real HTTP (uvicorn on loopback, httpx streaming bodies): an authentic
delivery is never refused, whatever its size, shape or type; only a bad signature is (401)."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import json
import os
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tool_webhooks import domain, metrics
from tool_webhooks.models import KeptDelivery

from .conftest import CONFIGURED_SECRET, Harness

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
PATH = "/api/v1/webhook/elevenlabs/post-call"
# 48 KiB of random bytes is 64 KiB of base64: the audio is this block repeated.
_AUDIO_BLOCK = base64.b64encode(os.urandom(48 * 1024))


def _conv() -> str:
    return f"conv_{uuid.uuid4().hex[:12]}"


def audio_pieces(conversation_id: str, mib: int) -> Iterator[bytes]:
    """A post_call_audio body (`full_audio` = `mib` MiB of base64), piece by piece, never whole."""
    yield json.dumps({"type": "post_call_audio", "event_timestamp": 1_764_000_000}).encode()[:-1]
    yield f', "data": {{"agent_id": "agent_abc", "conversation_id": "{conversation_id}", "full_audio": "'.encode()
    for _ in range(mib * 16):
        yield _AUDIO_BLOCK
    yield b'"}}'


def sign_pieces(pieces: Iterator[bytes], *, at: int | None = None, secret: str = CONFIGURED_SECRET) -> str:
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode(), hashlib.sha256)
    for piece in pieces:
        mac.update(piece)
    return f"t={timestamp},v0={mac.hexdigest()}"


async def stream(pieces: Iterator[bytes], sent: list[int] | None = None) -> AsyncIterator[bytes]:
    """A chunked request body; `sent` counts the bytes the server actually pulled."""
    for piece in pieces:
        if sent is not None:
            sent[0] += len(piece)
        yield piece


def long_transcript(conversation_id: str, *, turns: int, message_bytes: int) -> dict[str, Any]:
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": "agent_abc",
            "conversation_id": conversation_id,
            "status": "done",
            "transcript": [
                {
                    "role": "agent" if i % 2 else "user",
                    "message": f"turn {i}: "
                    + ('Bonjour, ça va? "quoted" \\ ' * message_bytes)[:message_bytes],
                    "time_in_call_secs": i,
                    "tool_calls": [],
                    "llm_usage": {"model_usage": {}},
                }
                for i in range(turns)
            ],
            "metadata": {"call_duration_secs": turns, "termination_reason": "end_call tool was called."},
            "analysis": {"call_successful": "success", "transcript_summary": "A long call."},
        },
    }


@pytest.fixture
async def client(http_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=http_url.removesuffix(PATH), timeout=60) as c:
        yield c


async def test_signed_8_mib_audio_sent_chunked_is_200_and_never_held_whole(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    conversation_id = _conv()
    signature = sign_pieces(audio_pieces(conversation_id, 8))
    gc.collect()
    tracemalloc.start()
    try:
        response = await client.post(
            PATH,
            content=stream(audio_pieces(conversation_id, 8)),
            headers={domain.SIGNATURE_HEADER: signature},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert "chunked" in response.request.headers.get("transfer-encoding", "")
    # Client and server together: far less than the 8 MiB body (let alone its decoded audio).
    assert peak < 4 * MiB, peak
    assert not await harness.claimed(domain.post_call_message_id("post_call_audio", conversation_id))


async def test_the_same_audio_with_content_length_is_200(client: httpx.AsyncClient) -> None:
    conversation_id = _conv()
    body = b"".join(audio_pieces(conversation_id, 6))
    response = await client.post(
        PATH, content=body, headers={domain.SIGNATURE_HEADER: sign_pieces(iter([body]))}
    )
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})


async def test_signed_call_initiation_failure_without_event_timestamp_is_dated_at_receipt(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    conversation_id = _conv()
    body = json.dumps(
        {
            "type": "call_initiation_failure",
            "data": {"agent_id": "agent_abc", "conversation_id": conversation_id, "failure_reason": "busy"},
        }
    ).encode()
    before = int(time.time())
    response = await client.post(
        PATH, content=body, headers={domain.SIGNATURE_HEADER: sign_pieces(iter([body]))}
    )
    after = int(time.time())
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})
    event = await harness.wait_for(
        message_id=domain.post_call_message_id("call_initiation_failure", conversation_id)
    )
    assert event["failure_reason"] == "busy"
    assert before <= event["event_timestamp"] <= after


@pytest.mark.parametrize("chunked", [True, False])
async def test_a_3_mb_transcript_is_published_whole_in_parts(
    harness: Harness, client: httpx.AsyncClient, chunked: bool
) -> None:
    conversation_id = _conv()
    payload = long_transcript(conversation_id, turns=1500, message_bytes=2000)
    body = json.dumps(payload, ensure_ascii=False).encode()
    assert len(body) > 3 * MiB
    headers = {domain.SIGNATURE_HEADER: sign_pieces(iter([body]))}
    pieces = [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]
    content: Any = stream(iter(pieces)) if chunked else body
    response = await client.post(PATH, content=content, headers=headers)
    assert (response.status_code, response.json()) == (200, {"status": "accepted"})

    received = await harness.wait_for(
        message_id=domain.post_call_message_id("post_call_transcription", conversation_id)
    )
    assert (received["call_successful"], received["call_duration_secs"]) == ("success", 1500)
    first = await harness.wait_for(conversation_id=conversation_id, type="post_call_webhook.transcript_part")
    count = first["part_count"]
    assert count >= 4
    for index in range(count):
        await harness.wait_for(conversation_id=conversation_id, part_index=index)
    parts = sorted(
        harness.matching(type="post_call_webhook.transcript_part", conversation_id=conversation_id),
        key=lambda p: p["part_index"],
    )
    assert [p["part_index"] for p in parts] == list(range(count))
    turns = json.loads("".join(p["transcript_json"] for p in parts))
    assert turns == [
        {"role": t["role"], "message": t["message"], "time_in_call_secs": t["time_in_call_secs"]}
        for t in payload["data"]["transcript"]
    ]
    assert all(len(json.dumps(p).encode()) < 300 * 1024 for p in parts)


async def test_only_a_bad_signature_is_401_and_a_bad_header_never_reads_the_body(
    client: httpx.AsyncClient,
) -> None:
    body = json.dumps({"type": "call_initiation_failure", "data": {"conversation_id": _conv()}}).encode()
    now = int(time.time())
    for case, signature in {
        "stale (31 min)": sign_pieces(iter([body]), at=now - 31 * 60),
        "wrong secret": sign_pieces(iter([body]), secret="not-the-secret"),
        "forged": f"t={now},v0={'0' * 64}",
        "missing": None,
    }.items():
        headers = {} if signature is None else {domain.SIGNATURE_HEADER: signature}
        response = await client.post(PATH, content=body, headers=headers)
        assert response.status_code == 401, case
        assert response.json()["error"] == "Invalid signature", case

    # Unsigned or stale, 256 MiB streamed: refused on the header, the body is not read to the end.
    for headers in ({}, {domain.SIGNATURE_HEADER: sign_pieces(iter([b""]), at=now - 31 * 60)}):
        sent = [0]
        huge = (b"x" * (64 * 1024) for _ in range(4096))
        try:
            response = await client.post(PATH, content=stream(huge, sent), headers=headers)
            assert response.status_code == 401
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
            pass  # the server answered and closed while the client was still sending: also a refusal
        assert sent[0] < 64 * MiB, sent[0]


async def test_authentic_but_unreadable_deliveries_are_kept_not_lost(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    nonce = uuid.uuid4().hex
    for body in (
        f"{{not json {nonce}".encode(),
        json.dumps({"type": "post_call_transcription", "data": {"nonce": nonce}}).encode(),  # no conversation
        f'["a list", "{nonce}"]'.encode(),
    ):
        headers = {domain.SIGNATURE_HEADER: sign_pieces(iter([body]))}
        response = await client.post(PATH, content=body, headers=headers)
        assert (response.status_code, response.json()) == (200, {"status": "kept"})
        async with harness.container.engine.connect() as connection:
            row = (
                (
                    await connection.execute(
                        select(KeptDelivery.__table__).where(
                            KeptDelivery.sha256 == hashlib.sha256(body).hexdigest()
                        )
                    )
                )
                .mappings()
                .one()
            )
        assert (row["body"], row["size_bytes"], row["truncated"]) == (body, len(body), False)
        assert row["reason"]
        # The same delivery again (a replay within the window) is not kept twice.
        again = await client.post(PATH, content=body, headers=headers)
        assert (again.status_code, again.json()) == (200, {"status": "duplicate"})


async def test_types_we_do_not_know_are_200_and_ignored(harness: Harness, client: httpx.AsyncClient) -> None:
    conversation_id = _conv()
    for kind in ("post_call_something_new", "unredacted_transcript"):
        body = json.dumps(
            {"type": kind, "event_timestamp": int(time.time()), "data": {"conversation_id": conversation_id}}
        ).encode()
        response = await client.post(
            PATH, content=body, headers={domain.SIGNATURE_HEADER: sign_pieces(iter([body]))}
        )
        assert (response.status_code, response.json()) == (200, {"status": "ignored"})
        assert not await harness.claimed(domain.post_call_message_id(kind, conversation_id))


async def test_an_outcome_too_big_for_one_bus_message_is_kept_not_a_500(
    harness: Harness, client: httpx.AsyncClient
) -> None:
    """Megabytes in a data-collection result: the event cannot travel, so the delivery is kept."""
    conversation_id = _conv()
    payload = long_transcript(conversation_id, turns=2, message_bytes=10)
    payload["data"]["analysis"]["data_collection_results"] = {
        "notes": {"data_collection_id": "notes", "value": "n" * (2 * MiB)}
    }
    body = json.dumps(payload).encode()
    response = await client.post(
        PATH, content=body, headers={domain.SIGNATURE_HEADER: sign_pieces(iter([body]))}
    )
    assert (response.status_code, response.json()) == (200, {"status": "kept"})
    assert not await harness.claimed(domain.post_call_message_id("post_call_transcription", conversation_id))
    async with harness.container.engine.connect() as connection:
        reason = (
            await connection.execute(
                select(KeptDelivery.reason).where(KeptDelivery.sha256 == hashlib.sha256(body).hexdigest())
            )
        ).scalar_one()
    assert "BUS_MAX_MESSAGE_BYTES" in reason


async def test_a_sender_that_hangs_up_mid_body_has_no_effect_and_no_500(http_url: str) -> None:
    """A body cut short is not a delivery: nothing is written, the request ends cleanly."""
    disconnected = metrics.POST_CALL_WEBHOOKS.labels("disconnected")
    before = disconnected._value.get()
    host, port = http_url.removeprefix("http://").split("/")[0].split(":")
    _reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: 100000\r\n{domain.SIGNATURE_HEADER}: t={int(time.time())},v0={'0' * 64}\r\n\r\n"
    )
    writer.write(head.encode() + b'{"type": "post_call_transcription", "da')
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    deadline = time.monotonic() + 30
    while disconnected._value.get() == before:
        assert time.monotonic() < deadline, "the server never noticed the hang-up"
        await asyncio.sleep(0.05)  # polling with a deadline
