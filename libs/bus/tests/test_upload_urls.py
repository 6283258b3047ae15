"""The one signer and checker of upload URLs (bus.secrets): what provisioning accepts to fetch."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bus.secrets import Keyring, UploadUrlRefused, check_upload_url, new_key, upload_url

KEY = Keyring(new_key())
NOW = 1_800_000_000


def _check(url: str, base: str = "http://gateway:8000") -> str:
    return check_upload_url(url, base_url=base, keyring=KEY, now_unix=NOW)


@pytest.mark.parametrize(
    ("base", "signed_under"),
    [
        ("http://gateway:8000", "http://gateway:8000"),
        ("http://gateway:8000/", "http://GATEWAY:8000"),  # host case, trailing slash
        ("https://sb.example", "https://sb.example:443"),  # default port either way
        ("http://sb.example/prefix", "http://sb.example/prefix/"),  # behind a path prefix
    ],
)
def test_a_signed_unexpired_url_under_the_gateway_is_accepted(base: str, signed_under: str) -> None:
    assert _check(upload_url(signed_under, KEY, "abc123", NOW + 60), base) == "abc123"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (upload_url("http://gateway:8001", KEY, "a", NOW + 60), "origin"),
        (upload_url("https://gateway:8000", KEY, "a", NOW + 60), "origin"),
        (upload_url("http://127.0.0.1:8000", KEY, "a", NOW + 60), "origin"),
        (upload_url("http://u:p@gateway:8000", KEY, "a", NOW + 60), "origin"),
        ("http://gateway:8000/internal/uploads/../admin?expires=1&sig=x", "upload path"),
        ("http://gateway:8000/secret", "upload path"),
        ("http://gateway:99999/secret", "not a URL"),
        (upload_url("http://gateway:8000", KEY, "a", NOW - 1), "expired"),
        (upload_url("http://gateway:8000", Keyring(new_key()), "a", NOW + 60), "bad signature"),
        (upload_url("http://gateway:8000", KEY, "a", NOW + 60) + "&x=1", "exactly one"),
        (upload_url("http://gateway:8000", KEY, "a", NOW + 60) + "#frag", "upload path"),
    ],
)
def test_anything_else_is_refused_naming_why(url: str, reason: str) -> None:
    with pytest.raises(UploadUrlRefused, match=reason):
        _check(url)


def test_signed_under_a_previous_key_is_accepted_during_a_rotation() -> None:
    old = new_key()
    url = upload_url("http://gateway:8000", Keyring(old), "a", NOW + 60)
    assert check_upload_url(
        url, base_url="http://gateway:8000", keyring=Keyring(new_key(), [old]), now_unix=NOW
    )


def test_a_signature_with_the_key_itself_is_refused() -> None:
    """The old code signed with SWITCHBOARD_SECRET_KEY as the HMAC key; only its subkey signs now."""
    key = new_key()
    raw = hmac.new(key.encode(), f"upload|a|{NOW + 60}".encode(), hashlib.sha256).hexdigest()
    url = f"http://gateway:8000/internal/uploads/a?expires={NOW + 60}&sig={raw}"
    with pytest.raises(UploadUrlRefused, match="bad signature"):
        check_upload_url(url, base_url="http://gateway:8000", keyring=Keyring(key), now_unix=NOW)
