"""The console's sign-in session, without I/O: what its cookie holds and how it is sealed.

The cookie (`COOKIE`, HttpOnly, SameSite=Strict, path /console) is the API key the operator signed
in with and the session's CSRF token, sealed with AES-256-GCM under SWITCHBOARD_SECRET_KEY's
encryption subkey (`bus.secrets.Keyring`, bound to `CONTEXT`): the browser never holds the key in
clear, any gateway replica can open it (no server-side store), and rotating the secret key signs
everyone out. Every request re-admits the key (`AccessService.admit`), so a revoked key or a lower
scope takes effect at once. A session lasts `MAX_AGE_S` from sign-in.

CSRF: every POST carries the session's token (`X-CSRF-Token` header, which the page sets on every
htmx request, or a `csrf_token` form field), compared in constant time. The sign-in form, which has
no session yet, uses a double-submit token (`PRE_COOKIE`).
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Final

from bus.secrets import Keyring, Undecryptable

COOKIE: Final = "sb_console"
PRE_COOKIE: Final = "sb_console_signin"
CONTEXT: Final = "gateway.console.session"
MAX_AGE_S: Final = 12 * 3600
PATH: Final = "/console"


@dataclass(frozen=True)
class ConsoleSession:
    api_key: str
    csrf: str
    issued_unix: int


def new_session(api_key: str, now_unix: int) -> ConsoleSession:
    return ConsoleSession(api_key=api_key, csrf=secrets.token_urlsafe(32), issued_unix=now_unix)


def seal(keyring: Keyring, session: ConsoleSession) -> str:
    """The cookie value: `sb2.<kid>.<base64url>` ciphertext of the session as JSON."""
    plain = json.dumps({"k": session.api_key, "c": session.csrf, "t": session.issued_unix})
    return keyring.encrypt(plain, context=CONTEXT)


def unseal(keyring: Keyring, cookie: str | None, now_unix: int) -> ConsoleSession | None:
    """The session in a cookie, or None when absent, tampered with, sealed under an unknown key, or
    older than `MAX_AGE_S`."""
    if not cookie:
        return None
    try:
        data = json.loads(keyring.decrypt(cookie, context=CONTEXT))
        session = ConsoleSession(api_key=str(data["k"]), csrf=str(data["c"]), issued_unix=int(data["t"]))
    except (Undecryptable, ValueError, KeyError, TypeError):
        return None
    if not 0 <= now_unix - session.issued_unix <= MAX_AGE_S:
        return None
    return session


def same_token(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())
