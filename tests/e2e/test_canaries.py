"""Canaries over the whole stack (issue 12): a store secret, an API key, a customer's e-mail and a
signed upload URL travel through the flows that touch them, and then appear nowhere but where they
belong: in no service log line, in no Kafka message outside their own fields, in no dead-letter
header and in no response but their own.

Flows: e-commerce tools and an agent created with the canary API key; a call with the canary store
credentials and the canary e-mail, and the orders tool called (with the token ElevenLabs holds) for
that e-mail, so the store is searched by it; a knowledge-base upload (its signed URL is read
from the command that carries it); and commands carrying the e-mail that fail (a database error, a
schema the reader refuses), so they are dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts import topics
from contracts.telephony import CustomerInfo, StoreCustomerSession
from devinfra.stack import Stack
from devinfra.standins.stores import StoreState
from tests.e2e.conftest import CANARY_API_KEY, poll
from tests.e2e.test_tool_tokens import _token_of
from tool_webhooks.domain import TOOL_TOKEN_HEADER

#: Where the customer's e-mail belongs in a message: the fields that carry a customer's address.
EMAIL_FIELDS = {"email", "to_email", "customer_email"}


async def _records(bootstrap: str, prefix: str) -> list[Any]:
    """Every record of the session's topics, from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        names = [t for t in await consumer.topics() if t.startswith(prefix)]
        partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"canary")
    finally:
        await producer.stop()


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, text) of every string in a JSON value, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, str(key)), str(key)
            yield from _leaves(item, (*path, str(key)))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)
    elif isinstance(value, str):
        yield path, value


def _logs(log_dir: Path) -> str:
    # Our services' logs; the simulator stands in for ElevenLabs, whose logs are not ours.
    return "\n".join(
        p.read_text(errors="replace") for p in log_dir.glob("*.log") if p.name != "elevenlabs-sim.log"
    )


def test_canaries_appear_only_where_they_belong(
    stack: Stack, sim: httpx.Client, woo: tuple[str, StoreState], log_dir: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    store_key, store_secret = f"ck_canary_{run}", f"cs_canary_secret_{run}"
    email = f"canary.{run}@example.com"
    woo_url, store = woo
    store.woo_keys[store_key] = store_secret
    env = stack.env
    responses: list[httpx.Response] = []
    with httpx.Client(
        base_url=stack.url("gateway"), headers={"X-API-Key": CANARY_API_KEY}, timeout=30
    ) as api:
        try:
            webhook_base = f"{stack.url('tool-webhooks')}/api/v1"
            tools = api.post("/api/v1/tools/ecommerce", json={"webhook_base_url": webhook_base})
            responses.append(tools)
            assert tools.status_code == 200, tools.text
            orders_tool = api.get(f"/api/v1/tools/{tools.json()['orders_tool_id']}")
            responses.append(orders_tool)
            token = _token_of(sim, orders_tool.json())
            agent = api.post("/api/v1/agents", json={"name": "Canary agent"})
            phone = api.post(
                "/api/v1/phone-numbers",
                json={
                    "phone_number": "+14155550161",
                    "label": "canary",
                    "sid": "AC" + "6" * 32,
                    "token": "t",
                },
            )
            responses += [agent, phone]
            call = api.post(
                "/api/v1/phone-numbers/twilio/outbound-call",
                json={
                    "agent_id": agent.json()["agent_id"],
                    "agent_phone_number_id": phone.json()["phone_number_id"],
                    "to_number": "+14155550162",
                    "ecommerce_credentials": {
                        "platform": "woocommerce",
                        "base_url": woo_url,
                        "api_key": store_key,
                        "api_secret": store_secret,
                    },
                    "customer_info": {"name": "Canary Caller", "email": email},
                },
            )
            responses.append(call)
            assert call.status_code == 200, call.text
            cid = call.json()["conversation_id"]

            def ask_orders() -> httpx.Response | None:
                # What ElevenLabs sends when the caller asks for their orders by e-mail: the store
                # is searched by it (once tool-webhooks knows the call's store, from the bus).
                answer = httpx.post(
                    f"{webhook_base}/webhook/ecommerce/orders",
                    json={"conversation_id": cid, "email": email},
                    headers={TOOL_TOKEN_HEADER: token},
                    timeout=10,
                )
                # (and the tool's token: 401 until then).
                known = answer.status_code == 200 and answer.json().get("error") != "no_store"
                return answer if known else None

            responses.append(poll(ask_orders))
            # Positive control: the store was searched by the canary e-mail with the canary keys.
            assert any(email in str(r.get("query")) for r in store.requests), store.requests[-3:]
            poll(lambda: api.get(f"/api/v1/calls/{cid}").json().get("status") == "completed")
        finally:
            store.woo_keys.pop(store_key, None)
        upload = api.post(
            "/api/v1/knowledge-base/file",
            files={
                "file": (
                    "canary.pdf",
                    b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
                    "application/pdf",
                )
            },
        )
        responses.append(upload)
        assert upload.status_code == 200, upload.text
        responses += [
            api.get(f"/api/v1/calls/{cid}"),
            api.get("/api/v1/calls", params={"agent_id": agent.json()["agent_id"]}),
            api.get(f"/api/v1/knowledge-base/{upload.json()['document_id']}"),
            api.get("/api/v1/tools"),
        ]
        session = api.get(f"/api/v1/email-templates/sessions/{cid}")  # the e-mail's own answer
        assert session.json()["customer_info"]["email"] == email

    # Commands carrying the e-mail that fail: a name over telephony's column (a database error,
    # retried, then dead-lettered) and a shape its schema refuses (dead-lettered at once).
    failing = StoreCustomerSession(
        conversation_id=f"conv_canary_{run}", customer_info=CustomerInfo(name="n" * 600, email=email)
    )
    refused = {"type": "customer_session.store", "conversation_id": 7, "customer_info": {"email": email}}
    commands = f"{env['KAFKA_TOPIC_PREFIX']}{topics.TELEPHONY_COMMANDS}"
    asyncio.run(
        _publish(
            env["KAFKA_BOOTSTRAP_SERVERS"],
            commands,
            [failing.model_dump_json().encode(), json.dumps(refused).encode()],
        )
    )

    def dead_letters() -> list[Any]:
        records = asyncio.run(_records(env["KAFKA_BOOTSTRAP_SERVERS"], f"{commands}.dlq"))
        return [r for r in records if email.encode() in (r.value or b"")]

    letters = poll(lambda: (found := dead_letters()) and len(found) == 2 and found)
    reasons = sorted(dict(r.headers)["x-reason"].decode() for r in letters)
    assert reasons == ["handler-failed", "schema-invalid"]

    records = asyncio.run(_records(env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_PREFIX"]))
    file_urls = [
        text
        for r in records
        if b"/internal/uploads/" in (r.value or b"")
        for path, text in _leaves(json.loads(r.value))
        if path[-1:] == ("file_url",) and "/internal/uploads/" in text
    ]
    # The signed URL of this upload: the one whose document the command created.
    signatures = {parse_qs(urlsplit(u).query)["sig"][0] for u in file_urls}
    assert signatures
    canaries = {
        "store secret": store_secret,
        "store key": store_key,
        "API key": CANARY_API_KEY,
        "e-mail": email,
        **{f"upload signature {i}": sig for i, sig in enumerate(sorted(signatures))},
    }

    leaks: list[str] = []
    logs = _logs(log_dir)
    assert cid in logs  # control: the call's own lines are there
    leaks += [f"log: {name}" for name, value in canaries.items() if value in logs]
    for record in records:
        where = f"{record.topic}@{record.partition}:{record.offset}"
        for key, header in record.headers:
            text = (header or b"").decode(errors="replace")
            leaks += [f"header {key} of {where}: {name}" for name, value in canaries.items() if value in text]
        raw = (record.value or b"").decode(errors="replace")
        if not any(value in raw for value in canaries.values()):
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            leaks.append(f"message {where}: not JSON, with a canary")
            continue
        for path, text in _leaves(message):
            for name, value in canaries.items():
                if value not in text:
                    continue
                belongs = (name == "e-mail" and path[-1:] and path[-1] in EMAIL_FIELDS) or (
                    name.startswith("upload signature") and path[-1:] == ("file_url",)
                )
                if not belongs:
                    leaks.append(f"message {where} at {'.'.join(path)}: {name}")
    for response in responses:
        body = response.text
        leaks += [
            f"response {response.request.method} {response.request.url.path}: {name}"
            for name, value in canaries.items()
            if value in body
        ]
    assert leaks == []
    # Controls: the e-mail did travel in messages and the store's lines were logged (redacted).
    assert any(email.encode() in (r.value or b"") for r in records)
    assert re.search(r"orders\?search=REDACTED", logs)
