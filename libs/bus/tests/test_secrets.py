"""Every service must derive the same cipher from the same SWITCHBOARD_SECRET_KEY."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from bus.secrets import fernet_for


def test_a_fernet_key_is_used_as_it_is() -> None:
    key = Fernet.generate_key().decode()
    token = Fernet(key.encode()).encrypt(b"twilio-token")
    assert fernet_for(key).decrypt(token) == b"twilio-token"


def test_a_passphrase_is_stretched_the_same_way_every_time() -> None:
    token = fernet_for("correct horse battery staple").encrypt(b"sip-password")
    assert fernet_for("correct horse battery staple").decrypt(token) == b"sip-password"
    with pytest.raises(Exception):  # noqa: B017, PT011 - InvalidToken: a different passphrase cannot read it
        fernet_for("another passphrase").decrypt(token)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="SWITCHBOARD_SECRET_KEY"):
        fernet_for("")
