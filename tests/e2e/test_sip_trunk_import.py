"""SIP trunk imports carry every trunk field to ElevenLabs or refuse it (issue 11), over the whole stack."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from devinfra.stack import SANDBOX_API_KEY
from tests.e2e.conftest import upstream_requests


def _number() -> str:
    return f"+3906{uuid.uuid4().int % 10**8:08d}"


def _import(api: httpx.Client, **fields: Any) -> httpx.Response:
    body = {
        "phone_number": _number(),
        "label": "SIP line",
        "outbound_trunk_config": {"address": "sip.carrier.example"},
    }
    return api.post("/api/v1/phone-numbers/sip-trunk", json=body | fields)


def _sent(sim: httpx.Client, phone_number: str) -> dict[str, Any]:
    posts = upstream_requests(sim, "/v1/convai/phone-numbers", method="POST")
    body: dict[str, Any] = next(
        r["json"] for r in posts if (r["json"] or {}).get("phone_number") == phone_number
    )
    return body


def test_issue_example_allowed_addresses_reach_elevenlabs(api: httpx.Client, sim: httpx.Client) -> None:
    number = _number()
    response = _import(
        api,
        phone_number=number,
        inbound_trunk_config={"allowed_addresses": ["203.0.113.0/24"], "media_encryption": "required"},
    )
    assert response.status_code == 200, response.text
    sent = _sent(sim, number)
    assert sent["inbound_trunk_config"] == {
        "allowed_addresses": ["203.0.113.0/24"],
        "media_encryption": "required",
    }
    phone_id = response.json()["phone_number_id"]
    stored = sim.get(f"/v1/convai/phone-numbers/{phone_id}", headers={"xi-api-key": SANDBOX_API_KEY}).json()
    assert stored["inbound_trunk"]["allowed_addresses"] == ["203.0.113.0/24"]


def test_every_trunk_field_reaches_elevenlabs(api: httpx.Client, sim: httpx.Client) -> None:
    number = _number()
    inbound = {
        "address": "sip.rtc.elevenlabs.io:5060",  # api-v1.md's example: ElevenLabs' endpoint, not a setting
        "allowed_addresses": ["198.51.100.7", "2001:db8::/32"],
        "allowed_numbers": [number],
        "media_encryption": "disabled",
        "remote_domains": ["sip.carrier.example"],
        "attributes_to_headers": {"customer_id": "X-Customer-Id"},
        "credentials": {"username": "in-user", "password": "in-pass"},
    }
    outbound = {
        "address": "sip.carrier.example",
        "transport": "tcp",
        "media_encryption": "allowed",
        "headers": {"X-Account": "42"},
        "attributes_to_headers": {"order_id": "X-Order-Id"},
        "enabled_codecs": ["PCMU/8000"],
        "credentials": {"username": "out-user", "password": "out-pass"},
    }
    response = _import(api, phone_number=number, inbound_trunk_config=inbound, outbound_trunk_config=outbound)
    assert response.status_code == 200, response.text
    sent = _sent(sim, number)
    assert sent["inbound_trunk_config"] == {k: v for k, v in inbound.items() if k != "address"}
    assert sent["outbound_trunk_config"] == outbound


@pytest.mark.parametrize(
    ("fields", "mentions"),
    [
        # The issue's second example: a password without a username was dropped; the spec requires one.
        ({"inbound_trunk_config": {"credentials": {"password": "pw"}}}, "username"),
        (
            {"outbound_trunk_config": {"address": "sip.carrier.example", "credentials": {"password": "pw"}}},
            "username",
        ),
        ({"inbound_trunk_config": {"allowed_addresses": ["not-an-ip"]}}, "allowed_addresses"),
        ({"inbound_trunk_config": {"address": "sip.carrier.example"}}, "allowed_addresses"),
        ({"inbound_trunk_config": {"transport": "tls"}}, "transport"),
        ({"inbound_trunk_config": {"allowed_adresses": ["203.0.113.1"]}}, "allowed_adresses"),
        ({"inbound_trunk_config": {"media_encryption": "sometimes"}}, "media_encryption"),
        ({"outbound_trunk_config": {"address": "h", "enabled_codecs": ["OPUS/48000"]}}, "enabled_codecs"),
        (
            {"outbound_trunk_config": {"address": "h", "allowed_addresses": ["203.0.113.1"]}},
            "allowed_addresses",
        ),
    ],
)
def test_what_elevenlabs_would_refuse_or_ignore_is_a_422(
    api: httpx.Client, sim: httpx.Client, fields: dict[str, Any], mentions: str
) -> None:
    number = _number()
    response = _import(api, phone_number=number, **fields)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["success"], body["error"]) == (False, "Validation error")
    assert mentions in body["detail"]
    posts = upstream_requests(sim, "/v1/convai/phone-numbers", method="POST")
    assert all((r["json"] or {}).get("phone_number") != number for r in posts)
