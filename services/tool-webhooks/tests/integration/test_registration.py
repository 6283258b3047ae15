"""Registering the workspace post-call webhook: bus command, simulator, encrypted secret, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from bus.secrets import column_context
from contracts.webhooks import RegisterPostCallWebhook
from tool_webhooks import domain
from tool_webhooks.models import WebhookRegistration
from tool_webhooks.settings import Settings

from .conftest import KEYRING, SECRET_KEY, Harness

pytestmark = pytest.mark.integration


async def _row(harness: Harness, webhook_id: str) -> WebhookRegistration:
    query = select(WebhookRegistration).where(WebhookRegistration.webhook_id == webhook_id)
    async with harness.container.sessionmaker() as session:
        row: WebhookRegistration = (await session.scalars(query)).one()
        return row


async def test_register_command_stores_the_secret_encrypted_and_it_verifies(harness: Harness) -> None:
    command = RegisterPostCallWebhook(
        public_url="https://sb.example/api/v1/", correlation_id=uuid.uuid4().hex
    )
    await harness.publish(command)
    event = await harness.wait_for(causation_id=command.message_id)
    assert event["type"] == "post_call_webhook.registered", event
    assert event["correlation_id"] == command.correlation_id
    assert event["webhook_url"] == "https://sb.example/api/v1/webhook/elevenlabs/post-call"
    webhook_id = event["webhook_id"]
    assert set(event) >= {"webhook_id", "webhook_url"} and not any("secret" in k for k in event)
    assert event["retries_enabled"] is True

    created = await harness.sim.get("/v1/workspace/webhooks")
    assert webhook_id in {w["webhook_id"] for w in created.json()["webhooks"]}
    convai = (await harness.sim.get("/v1/convai/settings")).json()["webhooks"]
    assert convai["post_call_webhook_id"] == webhook_id
    assert convai["events"] == ["transcript", "call_initiation_failure"]
    # ElevenLabs retries a transcription delivery we could not take (off unless asked for); the
    # simulator checks the PATCH against the official spec.
    patches = (
        await harness.sim.get(
            "/_sim/requests", params={"method": "PATCH", "path": f"/v1/workspace/webhooks/{webhook_id}"}
        )
    ).json()["requests"]
    assert [(p["status"], p["json"]) for p in patches] == [
        (200, {"name": domain.WEBHOOK_NAME, "is_disabled": False, "retry_enabled": True})
    ]

    row = await _row(harness, webhook_id)
    clear = KEYRING.decrypt(
        row.secret_encrypted, context=column_context(WebhookRegistration.secret_encrypted, row.id)
    )
    assert clear and clear not in row.secret_encrypted and clear not in json.dumps(event)
    assert row.command_message_id == command.message_id

    # A webhook signed with the registered secret now verifies (alongside the configured one).
    conversation_id = f"conv_{uuid.uuid4().hex[:12]}"
    body = json.dumps(
        {
            "type": "post_call_transcription",
            "event_timestamp": 1,
            "data": {"conversation_id": conversation_id},
        }
    ).encode()
    response = await harness.post(body, domain.sign(clear, body, int(time.time())))
    assert response.json() == {"status": "accepted"}

    # A redelivered command has no second effect.
    await harness.publish(command)
    marker = RegisterPostCallWebhook(public_url="not a url")
    await harness.publish(marker)
    await harness.wait_for(causation_id=marker.message_id)
    assert len(harness.matching(causation_id=command.message_id)) == 1


async def test_upstream_failure_and_bad_url_become_command_failed(harness: Harness) -> None:
    await harness.sim.post(
        "/_sim/faults", json={"method": "POST", "path_regex": "/v1/workspace/webhooks", "status": 422}
    )
    failing = RegisterPostCallWebhook(public_url="https://sb.example/api/v1")
    await harness.publish(failing)
    event = await harness.wait_for(causation_id=failing.message_id)
    assert (event["type"], event["status_code"], event["command_type"]) == (
        "command.failed",
        422,
        "post_call_webhook.register",
    )

    bad = RegisterPostCallWebhook(public_url="ftp:/nowhere")
    await harness.publish(bad)
    event = await harness.wait_for(causation_id=bad.message_id)
    assert (event["type"], event["status_code"]) == ("command.failed", 422)


@pytest.mark.parametrize("refusal", [403, 404, 422, 500])
async def test_registration_whose_retries_elevenlabs_refused_says_so(harness: Harness, refusal: int) -> None:
    """Retries only shorten the wait for a missed transcription, so their refusal does not fail
    the registration; before, the answer did not say it, and the operator believed them on."""
    path = "^/v1/workspace/webhooks/[^/]+$"
    fault = {"method": "PATCH", "path_regex": path, "status": refusal, "count": 10}
    (await harness.sim.post("/_sim/faults", json=fault)).raise_for_status()
    command = RegisterPostCallWebhook(public_url="https://sb.example/api/v1")
    await harness.publish(command)
    event = await harness.wait_for(causation_id=command.message_id)
    assert event["type"] == "post_call_webhook.registered", event
    assert event["retries_enabled"] is False
    convai = (await harness.sim.get("/v1/convai/settings")).json()["webhooks"]
    assert convai["post_call_webhook_id"] == event["webhook_id"]


def test_cli_registers_and_never_prints_the_secret(settings: Settings) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "ELEVENLABS_BASE_URL": settings.elevenlabs_base_url,
        "ELEVENLABS_API_KEY": "sim-key",
        "SWITCHBOARD_SECRET_KEY": SECRET_KEY,
        "LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tool_webhooks", "register-webhook", "https://cli.example/api/v1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split("=", 1) for line in done.stdout.strip().splitlines())
    assert lines["webhook_url"] == "https://cli.example/api/v1/webhook/elevenlabs/post-call"
    assert lines["webhook_id"]
    assert lines["retries_enabled"] == "true"
    assert "secret" not in done.stdout.lower() and "secret" not in done.stderr.lower()


@pytest.mark.parametrize("lost_answer", [{"status": 500}, {"delay_ms": 5000}], ids=["500", "timeout"])
async def test_registration_whose_answer_is_lost_leaves_exactly_one_webhook(
    harness: Harness, lost_answer: dict[str, Any]
) -> None:
    """Created, then 500 / time out: the secret is lost with the answer, so the orphan is deleted
    and the webhook created again; one webhook upstream, the one recorded (issue 10 §1)."""
    client = harness.container.elevenlabs
    public_url = f"https://sb-{uuid.uuid4().hex[:8]}.example/api/v1"
    await harness.sim.post(
        "/_sim/faults",
        json={"method": "POST", "path_regex": "^/v1/workspace/webhooks$", "after": True, **lost_answer},
    )
    # the defaults (these tests set no retries and a long timeout), so a lost answer can be re-created
    original = client.timeout_s, client.max_retries
    client.timeout_s, client.max_retries = 2.0, 1
    try:
        command = RegisterPostCallWebhook(public_url=public_url, correlation_id=uuid.uuid4().hex)
        await harness.publish(command)
        event = await harness.wait_for(causation_id=command.message_id)
    finally:
        client.timeout_s, client.max_retries = original

    assert event["type"] == "post_call_webhook.registered", event
    ours = [w for w in await client.list_workspace_webhooks() if w["webhook_url"] == event["webhook_url"]]
    assert [w["webhook_id"] for w in ours] == [event["webhook_id"]]
    convai = (await harness.sim.get("/v1/convai/settings")).json()["webhooks"]
    assert convai["post_call_webhook_id"] == event["webhook_id"]
    row = await _row(harness, event["webhook_id"])
    assert KEYRING.decrypt(
        row.secret_encrypted, context=column_context(WebhookRegistration.secret_encrypted, row.id)
    )
