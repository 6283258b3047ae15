"""The SIP trunk import body validates against the official ElevenLabs OpenAPI schema, carries every
inbound/outbound field that schema defines, and refuses what it refuses (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.telephony import ImportSipTrunkNumber, SipCredentials, TrunkConfig
from telephony import domain

jsonschema = pytest.importorskip("jsonschema")

_REPO = Path(__file__).resolve().parents[4]
_CANDIDATES = (
    _REPO.parent / "shared/reference/elevenlabs-openapi.json",
    _REPO / "services/elevenlabs-sim/src/elevenlabs_sim/openapi_subset.json",
)
_CREATE = "CreateSIPTrunkPhoneNumberRequestV2"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    for path in _CANDIDATES:
        if path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
    pytest.skip("no ElevenLabs OpenAPI spec available")


def _errors(spec: dict[str, Any], component: str, instance: Any) -> list[str]:
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def _properties(spec: dict[str, Any], component: str) -> set[str]:
    return set(spec["components"]["schemas"][component]["properties"])


def _decrypt(token: str, field: str) -> str:
    return f"plain({token})"


def _full_command() -> ImportSipTrunkNumber:
    """Every field the contract has, set."""
    return ImportSipTrunkNumber(
        phone_number="+390620199287",
        label="Italy SIP Line",
        agent_id="agent_1",
        inbound_trunk_config=TrunkConfig(
            allowed_addresses=["203.0.113.0/24", "198.51.100.7"],
            allowed_numbers=["+390620199287"],
            media_encryption="required",
            remote_domains=["sip.carrier.example"],
            attributes_to_headers={"customer_id": "X-Customer-Id"},
            credentials=SipCredentials(username="in-user", password_encrypted="tok-in"),
        ),
        outbound_trunk_config=TrunkConfig(
            address="voiceagent.fibrapro.it",
            transport="tls",
            media_encryption="allowed",
            headers={"X-Account": "42"},
            attributes_to_headers={"order_id": "X-Order-Id"},
            enabled_codecs=["G722/8000", "PCMA/8000"],
            credentials=SipCredentials(username="out-user", password_encrypted="tok-out"),
        ),
    )


def test_full_import_body_validates_and_carries_every_trunk_field(spec: dict[str, Any]) -> None:
    body = domain.sip_import_body(_full_command(), _decrypt)

    assert _errors(spec, _CREATE, body) == []
    assert set(body) <= _properties(spec, _CREATE)
    # Nothing the spec defines for a trunk is out of our reach, and nothing else is sent.
    assert set(body["inbound_trunk_config"]) == _properties(spec, "InboundSIPTrunkConfigRequestModel")
    assert set(body["outbound_trunk_config"]) == _properties(spec, "OutboundSIPTrunkConfigRequestModel")
    assert body["inbound_trunk_config"]["credentials"] == {"username": "in-user", "password": "plain(tok-in)"}
    assert body["agent_id"] == "agent_1"


def test_issue_example_carries_allowed_addresses(spec: dict[str, Any]) -> None:
    command = ImportSipTrunkNumber(
        phone_number="+390620199287",
        label="ACL line",
        inbound_trunk_config=TrunkConfig(allowed_addresses=["203.0.113.0/24"], media_encryption="required"),
        outbound_trunk_config=TrunkConfig(address="sip.carrier.example"),
    )
    body = domain.sip_import_body(command, _decrypt)
    assert body["inbound_trunk_config"] == {
        "allowed_addresses": ["203.0.113.0/24"],
        "media_encryption": "required",
    }
    assert _errors(spec, _CREATE, body) == []


def test_password_without_username_is_refused_like_the_spec_refuses_it(spec: dict[str, Any]) -> None:
    # The spec requires `username` in SIPTrunkCredentialsRequestModel.
    assert _errors(spec, "SIPTrunkCredentialsRequestModel", {"password": "pw"}) != []
    for inbound in (True, False):
        config = TrunkConfig(
            address=None if inbound else "sip.carrier.example",
            credentials=SipCredentials(username="", password_encrypted="tok"),
        )
        with pytest.raises(domain.CommandError) as caught:
            domain.trunk_body(config, _decrypt, inbound=inbound)
        assert caught.value.status_code == 422
        assert "username" in (caught.value.detail or "")


@pytest.mark.parametrize(
    ("inbound", "config", "refused"),
    [
        (True, TrunkConfig(address="sip.carrier.example"), "address"),
        (True, TrunkConfig(transport="tls"), "transport"),
        (True, TrunkConfig(headers={"X-A": "1"}), "headers"),
        (True, TrunkConfig(enabled_codecs=["PCMU/8000"]), "enabled_codecs"),
        (False, TrunkConfig(address="h", allowed_addresses=["203.0.113.1"]), "allowed_addresses"),
        (False, TrunkConfig(address="h", allowed_numbers=["+15551234567"]), "allowed_numbers"),
        (False, TrunkConfig(address="h", remote_domains=["d"]), "remote_domains"),
        (False, TrunkConfig(transport="udp"), "address is required"),
    ],
)
def test_fields_the_direction_does_not_take_are_refused_not_dropped(
    spec: dict[str, Any], inbound: bool, config: TrunkConfig, refused: str
) -> None:
    with pytest.raises(domain.CommandError) as caught:
        domain.trunk_body(config, _decrypt, inbound=inbound)
    assert caught.value.status_code == 422
    assert refused in (caught.value.detail or "")
