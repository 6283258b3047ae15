"""Twilio tokens, SIP passwords and store keys reach ElevenLabs (or the store) and nowhere else in clear.

Seeds unique canary values through the REST API, then searches every Kafka message on the
session's topics, every row of every table, every service log line and every response.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from devinfra.stack import Stack
from tests.e2e.conftest import poll


def _forms(secret: str) -> list[bytes]:
    """The clear value as text, and as Postgres renders it inside a bytea (hex)."""
    return [secret.encode(), secret.encode().hex().encode()]


async def _kafka_dump(bootstrap: str, prefix: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        names = [t for t in await consumer.topics() if t.startswith(prefix)]
        partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        blobs: list[bytes] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    blobs.append(record.value or b"")
                    blobs.append(b"".join(k.encode() + v for k, v in record.headers))
        return blobs
    finally:
        await consumer.stop()


async def _database_dump(url: str) -> list[bytes]:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        rows: list[bytes] = []
        for t in tables:
            query = f'SELECT row_to_json(x)::text AS j FROM "{t["table_schema"]}"."{t["table_name"]}" x'  # noqa: S608
            rows += [r["j"].encode() for r in await conn.fetch(query)]
        return rows
    finally:
        await conn.close()


def test_no_secret_appears_anywhere_in_clear(
    api: httpx.Client, sim: httpx.Client, stack: Stack, log_dir: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    canaries = {
        "twilio": f"canary-twilio-token-{run}",
        "sip": f"canary-sip-password-{run}",
        "store_key": f"canary-store-key-{run}",
        "store_secret": f"canary-store-secret-{run}",
    }
    responses: list[httpx.Response] = []
    agent = api.post("/api/v1/agents", json={"name": "Canary agent"}).json()["agent_id"]
    twilio = api.post(
        "/api/v1/phone-numbers",
        json={
            "phone_number": "+14155550101",
            "label": "canary",
            "sid": "AC" + "2" * 32,
            "token": canaries["twilio"],
        },
    )
    sip = api.post(
        "/api/v1/phone-numbers/sip-trunk",
        json={
            "phone_number": "+14155550102",
            "label": "canary sip",
            "outbound_trunk_config": {
                "address": "sip.example.com",
                "credentials": {"username": "canary-user", "password": canaries["sip"]},
            },
        },
    )
    responses += [twilio, sip]
    twilio_id = twilio.json()["phone_number_id"]
    call = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={
            "agent_id": agent,
            "agent_phone_number_id": twilio_id,
            "to_number": "+14155550111",
            "ecommerce_credentials": {
                "platform": "woocommerce",
                "base_url": "https://canary-store.example.com",
                "api_key": canaries["store_key"],
                "api_secret": canaries["store_secret"],
            },
            "customer_info": {"name": "Canary", "email": "canary@example.com"},
        },
    )
    responses.append(call)
    assert call.status_code == 200, call.text
    cid = call.json()["conversation_id"]
    poll(lambda: api.get(f"/api/v1/calls/{cid}").json().get("status") == "completed")
    responses += [
        api.get(f"/api/v1/phone-numbers/{twilio_id}"),
        api.get("/api/v1/phone-numbers"),
        api.get(f"/api/v1/calls/{cid}"),
        api.get(f"/api/v1/email-templates/sessions/{cid}"),
    ]

    # Positive control: the secrets did reach ElevenLabs, so the search below searches for real values.
    assert canaries["twilio"] in str(sim.get(f"/_sim/phone-numbers/{twilio_id}/secrets").json())
    assert canaries["sip"] in str(
        sim.get(f"/_sim/phone-numbers/{sip.json()['phone_number_id']}/secrets").json()
    )

    env = stack.env
    places: dict[str, list[bytes]] = {
        "kafka": asyncio.run(_kafka_dump(env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_PREFIX"])),
        "database": asyncio.run(_database_dump(env["DATABASE_URL"])),
        "responses": [r.content for r in responses],
        "logs": [p.read_bytes() for p in log_dir.glob("*.log") if p.name != "elevenlabs-sim.log"],
    }
    # Controls: non-secret values from the same requests are found, so each search sees those flows.
    assert any(b"canary-user" in blob for blob in places["kafka"])  # SIP username travels in events
    assert any(b"canary@example.com" in blob for blob in places["database"])  # the customer session
    assert any(cid.encode() in blob for blob in places["logs"])
    leaks: list[Any] = []
    for place, blobs in places.items():
        for name, secret in canaries.items():
            for form in _forms(secret):
                if any(form in blob for blob in blobs):
                    leaks.append((place, name))
    assert leaks == []
