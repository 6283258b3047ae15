"""A SIP trunk's config as the import command carries it (`gateway.phone_numbers.trunk_config`):
every field the request gave, the password only encrypted, bound to its field."""

from __future__ import annotations

import pytest

from bus.secrets import Keyring, Undecryptable, message_context, new_key
from gateway.phone_numbers import trunk_config
from gateway.schemas import InboundTrunkConfigIn, OutboundTrunkConfigIn

KEYRING = Keyring(new_key())


def test_no_config_carries_none() -> None:
    assert trunk_config(None, KEYRING) is None


def test_an_outbound_password_travels_only_encrypted_for_its_field() -> None:
    config = OutboundTrunkConfigIn.model_validate(
        {
            "address": "sip.carrier.example",
            "transport": "tls",
            "credentials": {"username": "u", "password": "s3cret"},
        }
    )
    carried = trunk_config(config, KEYRING)
    assert carried is not None
    assert carried.address == "sip.carrier.example"
    assert carried.transport == "tls"
    assert carried.credentials is not None
    encrypted = carried.credentials.password_encrypted
    assert encrypted is not None and "s3cret" not in encrypted
    assert "s3cret" not in carried.model_dump_json()
    assert KEYRING.decrypt(encrypted, context=message_context("password_encrypted")) == "s3cret"
    with pytest.raises(Undecryptable):
        KEYRING.decrypt(encrypted, context=message_context("token_encrypted"))


def test_an_inbound_address_is_not_carried_and_a_missing_password_stays_missing() -> None:
    config = InboundTrunkConfigIn.model_validate(
        {
            "address": "sip.rtc.elevenlabs.io:5060",
            "allowed_addresses": ["203.0.113.0/24"],
            "credentials": {"username": "u"},
        }
    )
    carried = trunk_config(config, KEYRING)
    assert carried is not None
    assert carried.address is None
    assert carried.allowed_addresses == ["203.0.113.0/24"]
    assert carried.credentials is not None
    assert (carried.credentials.username, carried.credentials.password_encrypted) == ("u", None)
