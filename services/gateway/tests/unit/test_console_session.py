"""The console's session cookie (gateway.console.session): sealed, bound, expiring."""

from __future__ import annotations

from bus.secrets import Keyring, new_key
from gateway.console import session as sessions


def test_a_sealed_session_opens_with_the_same_key_and_never_shows_the_api_key() -> None:
    keyring = Keyring(new_key())
    made = sessions.new_session("sb_live_0123456789abcdef_secret", now_unix=1_000)
    cookie = sessions.seal(keyring, made)
    assert "sb_live" not in cookie and "secret" not in cookie
    assert sessions.unseal(keyring, cookie, now_unix=1_000 + 60) == made


def test_a_tampered_foreign_or_expired_cookie_is_no_session() -> None:
    keyring = Keyring(new_key())
    cookie = sessions.seal(keyring, sessions.new_session("key", now_unix=1_000))
    assert (
        sessions.unseal(keyring, cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1], 1_000)
        is None
    )
    assert sessions.unseal(Keyring(new_key()), cookie, 1_000) is None
    assert sessions.unseal(keyring, cookie, 1_000 + sessions.MAX_AGE_S + 1) is None
    assert sessions.unseal(keyring, cookie, 999 - 60) is None  # issued in the future
    assert sessions.unseal(keyring, "", 1_000) is None
    assert sessions.unseal(keyring, "garbage", 1_000) is None
    # Sealed for another purpose (a stored secret): not a session.
    other = keyring.encrypt('{"k": "key", "c": "x", "t": 1000}', context="gateway.other")
    assert sessions.unseal(keyring, other, 1_000) is None


def test_csrf_tokens_compare_whole() -> None:
    assert sessions.same_token("abc", "abc")
    assert not sessions.same_token("abc", "ab")
    assert not sessions.same_token("abc", None)
    assert not sessions.same_token("abc", "")
