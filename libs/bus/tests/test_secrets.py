"""The keys (bus.secrets): several at once, one subkey per purpose, passphrases stretched with a
salted scrypt, unusable keys refused at start, and ciphertexts bound to where they live."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import ValidationError

from bus.secrets import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    Keyring,
    SecretKeyError,
    SecretKeySettings,
    ToolTokenClaim,
    Undecryptable,
    message_context,
    mint_tool_token,
    new_key,
    read_tool_token,
    row_context,
    sign_upload,
    v1_tool_token_valid,
)

OLD, NEW = new_key(), new_key()
ROW = row_context("tool_webhooks.conversations", "conv_1", "ecommerce_credentials_encrypted")
PASSPHRASE = "correct horse battery staple"
SALT = "a-deployment-salt-1234"


# ---- several keys ---------------------------------------------------------------------------


def test_encrypts_with_the_first_key_and_decrypts_with_any() -> None:
    before = Keyring(OLD).encrypt("twilio-token", context=ROW)
    rotated = Keyring(NEW, [OLD])
    assert rotated.decrypt(before, context=ROW) == "twilio-token"
    after = rotated.encrypt("twilio-token", context=ROW)
    assert Keyring(NEW).decrypt(after, context=ROW) == "twilio-token"
    with pytest.raises(Undecryptable):  # the new key encrypts: the old key alone cannot read it
        Keyring(OLD).decrypt(after, context=ROW)
    with pytest.raises(Undecryptable):  # once the old key is gone, what it made is unreadable
        Keyring(NEW).decrypt(before, context=ROW)
    assert rotated.is_current(after) and not rotated.is_current(before)


def test_signatures_verify_under_any_key_and_are_made_with_the_first() -> None:
    old_signature = Keyring(OLD).sign("tool-token", "ecommerce/orders|n1")
    assert Keyring(NEW, [OLD]).verify("tool-token", "ecommerce/orders|n1", old_signature)
    assert not Keyring(NEW).verify("tool-token", "ecommerce/orders|n1", old_signature)
    assert Keyring(NEW, [OLD]).sign("tool-token", "m") == Keyring(NEW).sign("tool-token", "m")


# ---- one subkey per purpose -----------------------------------------------------------------


def test_each_purpose_has_its_own_subkey_never_the_key_itself() -> None:
    keyring = Keyring(OLD)
    message = "upload|abc|1800000000"
    upload = keyring.sign("upload-url", message)
    assert not keyring.verify("tool-token", message, upload)
    assert keyring.sign("tool-token", message) != upload
    # the old code signed with the setting itself (HMAC key = SWITCHBOARD_SECRET_KEY)
    raw = hmac.new(OLD.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert sign_upload(keyring, "abc", 1_800_000_000) == upload != raw
    assert not keyring.verify("upload-url", message, raw)
    # and encrypted with it as a Fernet key: the new ciphertexts are not under the key itself
    with pytest.raises(Exception):  # noqa: B017, PT011 - InvalidToken
        Fernet(OLD.encode()).decrypt(keyring.encrypt("s", context=ROW).encode())


# ---- passphrases ----------------------------------------------------------------------------


def test_a_passphrase_is_stretched_with_scrypt_and_the_deployment_salt() -> None:
    keyring = Keyring(PASSPHRASE, salt=SALT)
    master = Scrypt(salt=SALT.encode(), length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(
        PASSPHRASE.encode()
    )
    # the same master, given as a random key, is the same keyring
    assert Keyring(base64.urlsafe_b64encode(master).decode()).sign("tool-token", "m") == keyring.sign(
        "tool-token", "m"
    )
    token = keyring.encrypt("sip-password", context=ROW)
    assert Keyring(PASSPHRASE, salt=SALT).decrypt(token, context=ROW) == "sip-password"
    with pytest.raises(Undecryptable):  # another salt is another key
        Keyring(PASSPHRASE, salt=SALT + "x").decrypt(token, context=ROW)
    # the old code's stretch: one unsalted SHA-256
    sha = base64.urlsafe_b64encode(hashlib.sha256(PASSPHRASE.encode()).digest()).decode()
    with pytest.raises(Undecryptable):
        Keyring(sha).decrypt(token, context=ROW)


# ---- unusable keys refuse to start ----------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({}, "SWITCHBOARD_SECRET_KEY is empty"),
        ({"SWITCHBOARD_SECRET_KEY": "   "}, "SWITCHBOARD_SECRET_KEY is empty"),
        ({"SWITCHBOARD_SECRET_KEY": "short-secret"}, "SWITCHBOARD_SECRET_KEY is too short"),
        ({"SWITCHBOARD_SECRET_KEY": PASSPHRASE}, "set SWITCHBOARD_SECRET_SALT"),
        (
            {"SWITCHBOARD_SECRET_KEY": PASSPHRASE, "SWITCHBOARD_SECRET_SALT": "salt"},
            "SWITCHBOARD_SECRET_SALT",
        ),
        (
            {"SWITCHBOARD_SECRET_KEY": NEW, "SWITCHBOARD_PREVIOUS_SECRET_KEYS": f"{OLD},tiny-old-key"},
            "SWITCHBOARD_PREVIOUS_SECRET_KEYS is too short",
        ),
    ],
)
def test_an_unusable_key_refuses_to_start_naming_the_setting_not_the_value(
    settings: dict[str, str], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason) as refused:
        SecretKeySettings.model_validate(settings)
    for value in settings.values():
        if value.strip():
            assert value not in str(refused.value)
    with pytest.raises(SecretKeyError, match=reason.split(" ")[0]):
        Keyring(
            settings.get("SWITCHBOARD_SECRET_KEY", ""),
            [v for v in settings.get("SWITCHBOARD_PREVIOUS_SECRET_KEYS", "").split(",") if v],
            salt=settings.get("SWITCHBOARD_SECRET_SALT", ""),
        )


def test_usable_settings_give_the_keyring() -> None:
    settings = SecretKeySettings.model_validate(
        {"SWITCHBOARD_SECRET_KEY": NEW, "SWITCHBOARD_PREVIOUS_SECRET_KEYS": f" {OLD} ,"}
    )
    before = Keyring(OLD).encrypt("s", context=ROW)
    assert settings.keyring.decrypt(before, context=ROW) == "s"
    assert settings.keyring is settings.keyring  # derived once per process
    assert NEW not in repr(settings) and OLD not in repr(settings)


# ---- bound to where they live ---------------------------------------------------------------


def test_a_ciphertext_moved_to_another_row_or_column_does_not_decrypt() -> None:
    keyring = Keyring(NEW)
    token = keyring.encrypt("store-secret", context=ROW)
    assert keyring.decrypt(token, context=ROW) == "store-secret"
    elsewhere = [
        row_context("tool_webhooks.conversations", "conv_2", "ecommerce_credentials_encrypted"),
        row_context("campaigns.campaigns", "conv_1", "ecommerce_credentials_encrypted"),
        row_context("tool_webhooks.conversations", "conv_1", "secret_encrypted"),
        message_context("ecommerce_credentials_encrypted"),
    ]
    for context in elsewhere:
        with pytest.raises(Undecryptable):
            keyring.decrypt(token, context=context)
    moved = keyring.rebind(
        keyring.encrypt("s", context=message_context("token_encrypted")),
        from_context=message_context("token_encrypted"),
        to_context=ROW,
    )
    assert keyring.decrypt(moved, context=ROW) == "s"


def test_composite_keys_are_unambiguous() -> None:
    assert row_context("s.t", ["a:b", "c"], "x_encrypted") != row_context("s.t", ["a", "b:c"], "x_encrypted")
    assert row_context("s.t", 5, "x_encrypted") == row_context("s.t", "5", "x_encrypted")


@pytest.mark.parametrize("tampered", ["", "sb2", "sb2.", "sb2.00000000.AAAA", "gAAAAAbogus"])
def test_malformed_or_tampered_ciphertexts_are_undecryptable(tampered: str) -> None:
    keyring = Keyring(NEW)
    with pytest.raises(Undecryptable):
        keyring.decrypt(tampered, context=ROW)
    token = keyring.encrypt("s", context=ROW)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(Undecryptable):
        keyring.decrypt(flipped, context=ROW)


# ---- version 1 (Fernet) ciphertexts keep working --------------------------------------------


def test_fernet_tokens_of_the_old_code_still_decrypt_anywhere_until_rotated() -> None:
    legacy = Fernet(OLD.encode()).encrypt(b"twilio-token").decode()
    assert Keyring(NEW, [OLD]).decrypt(legacy, context=ROW) == "twilio-token"
    old_passphrase = Fernet(base64.urlsafe_b64encode(hashlib.sha256(PASSPHRASE.encode()).digest()))
    assert Keyring(PASSPHRASE, salt=SALT).decrypt(old_passphrase.encrypt(b"x").decode(), context=ROW) == "x"
    assert not Keyring(OLD).is_current(legacy)
    with pytest.raises(Undecryptable):
        Keyring(NEW).decrypt(legacy, context=ROW)


# ---- tool tokens ----------------------------------------------------------------------------


def test_a_tool_token_names_its_lineage_and_generation_and_is_signed_for_its_route() -> None:
    keyring = Keyring(NEW, [OLD])
    token = mint_tool_token(keyring, "ecommerce/orders", "cmd123", 2)
    assert token.startswith("v2.cmd123.2.")
    assert read_tool_token(keyring, "ecommerce/orders", token) == ToolTokenClaim("cmd123", 2)
    assert read_tool_token(keyring, "ecommerce/orders", f"  {token}\n") == ToolTokenClaim("cmd123", 2)
    signature = token.rsplit(".", 1)[1]
    for other in (
        read_tool_token(keyring, "ecommerce/products", token),  # another route
        read_tool_token(keyring, "email/confirm", token),
        read_tool_token(Keyring(new_key()), "ecommerce/orders", token),  # another deployment
        read_tool_token(keyring, "ecommerce/orders", f"v2.cmd123.3.{signature}"),  # generation raised
        read_tool_token(keyring, "ecommerce/orders", f"v2.cmd124.2.{signature}"),  # another lineage
        read_tool_token(keyring, "ecommerce/orders", token[:-1]),
        read_tool_token(keyring, "ecommerce/orders", None),
        read_tool_token(keyring, "ecommerce/orders", "v2.cmd123.0." + signature),
        read_tool_token(keyring, "ecommerce/orders", "v2.cmd123.²." + signature),
    ):
        assert other is None
    # made under the previous key: still read while that key is listed
    old_token = mint_tool_token(Keyring(OLD), "ecommerce/orders", "cmd123", 1)
    assert read_tool_token(keyring, "ecommerce/orders", old_token) == ToolTokenClaim("cmd123", 1)
    assert read_tool_token(Keyring(NEW), "ecommerce/orders", old_token) is None


def test_version_1_tool_tokens_are_recognised_only_as_the_old_code_made_them() -> None:
    old_code = hmac.new(OLD.encode(), b"ecommerce/orders|n1", hashlib.sha256).hexdigest()
    token = f"v1.n1.{old_code}"
    assert v1_tool_token_valid(Keyring(NEW, [OLD]), "ecommerce/orders", token)
    assert not v1_tool_token_valid(Keyring(NEW, [OLD]), "ecommerce/products", token)
    assert not v1_tool_token_valid(Keyring(NEW), "ecommerce/orders", token)
    v2 = mint_tool_token(Keyring(OLD), "ecommerce/orders", "n1", 1)
    assert not v1_tool_token_valid(Keyring(OLD), "ecommerce/orders", v2)
