"""Health, readiness and Prometheus metrics of every running service, after real traffic."""

from __future__ import annotations

import re

import httpx
import pytest

from devinfra.stack import Stack
from tests.e2e.conftest import SERVICES, poll

BACKEND = [s for s in SERVICES if s != "elevenlabs-sim"]


def _metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.mark.parametrize("service", BACKEND)
def test_liveness_and_readiness(stack: Stack, service: str) -> None:
    base = stack.url(service)
    assert httpx.get(f"{base}/health/live").status_code == 200
    ready = httpx.get(f"{base}/health/ready")
    assert ready.status_code == 200, ready.text


def test_metrics_after_traffic(api: httpx.Client, stack: Stack) -> None:
    agent = api.post("/api/v1/agents", json={"name": "Metered"}).json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550155", "label": "metered", "sid": "AC" + "3" * 32, "token": "t"},
    ).json()["phone_number_id"]
    call = api.post(
        "/api/v1/phone-numbers/twilio/outbound-call",
        json={"agent_id": agent, "agent_phone_number_id": number, "to_number": "+14155550161"},
    )
    assert call.status_code == 200, call.text
    cid = call.json()["conversation_id"]
    poll(lambda: api.get(f"/api/v1/calls/{cid}").json().get("status") == "completed")

    def scrape(service: str) -> str:
        return httpx.get(f"{stack.url(service)}/metrics").text

    gateway = scrape("gateway")
    assert (
        _metric(
            gateway, "switchboard_http_requests_total", route="/api/v1/agents", method="POST", status="200"
        )
        >= 1
    )
    assert _metric(gateway, "switchboard_http_request_seconds_count", route="/api/v1/agents") >= 1
    assert _metric(gateway, "switchboard_messages_handled_total", service="gateway", outcome="ok") >= 3
    assert _metric(gateway, "switchboard_outbox_relayed_total", service="gateway") >= 3

    telephony = scrape("telephony")
    assert _metric(telephony, "switchboard_calls_placed_total", provider="twilio") >= 1
    assert _metric(telephony, "switchboard_calls_ended_total", status="completed") >= 1
    assert _metric(telephony, "switchboard_messages_handled_total", service="telephony", outcome="ok") >= 2
    assert _metric(telephony, "switchboard_message_handle_seconds_count", service="telephony") >= 2

    provisioning = scrape("provisioning")
    assert _metric(provisioning, "switchboard_outbox_relayed_total", service="provisioning") >= 1
    assert (
        "switchboard_messages_dead_lettered_total" in provisioning
        or "switchboard_messages_handled_total" in provisioning
    )
