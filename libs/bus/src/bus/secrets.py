"""What every service derives from SWITCHBOARD_SECRET_KEY: the cipher for stored secrets, and the
signature of upload URLs.

The cipher: a Fernet key (what `make up` generates) is used as it is; any other non-empty value is treated as a
passphrase and stretched with SHA-256, so every service derives the same key from the same setting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import SplitResult, parse_qs, urlsplit

from cryptography.fernet import Fernet


def fernet_for(secret_key: str) -> Fernet:
    if not secret_key:
        raise ValueError("SWITCHBOARD_SECRET_KEY is not set")
    try:
        if len(base64.urlsafe_b64decode(secret_key.encode())) == 32:
            return Fernet(secret_key.encode())
    except (binascii.Error, ValueError):
        pass
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))


# ---- signed upload URLs (claim checks) --------------------------------------------------------
# The gateway stages a knowledge-base upload and puts a URL to it in the command; provisioning
# fetches it. Provisioning fetches nothing else: a command names a URL, and anyone who can publish
# a command could otherwise make it fetch internal URLs and store their content upstream.

UPLOAD_PATH = "/internal/uploads/"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class UploadUrlRefused(ValueError):
    """A `file_url` that is not a live upload URL signed by our gateway; the reason is the message."""


def sign_upload(secret_key: str, upload_id: str, expires_unix: int) -> str:
    """Hex HMAC-SHA256 of `upload|<id>|<expiry>` under SWITCHBOARD_SECRET_KEY."""
    msg = f"upload|{upload_id}|{expires_unix}".encode()
    return hmac.new(secret_key.encode(), msg, hashlib.sha256).hexdigest()


def verify_upload_signature(
    secret_key: str, upload_id: str, expires_unix: int, sig: str, now_unix: int
) -> bool:
    if now_unix > expires_unix:
        return False
    return hmac.compare_digest(sign_upload(secret_key, upload_id, expires_unix), sig)


def upload_url(base_url: str, secret_key: str, upload_id: str, expires_unix: int) -> str:
    """`<gateway base>/internal/uploads/<id>?expires=<unix s>&sig=<hex>`; the gateway serves it."""
    sig = sign_upload(secret_key, upload_id, expires_unix)
    return f"{base_url.rstrip('/')}{UPLOAD_PATH}{upload_id}?expires={expires_unix}&sig={sig}"


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or {"http": 80, "https": 443}.get(scheme)


def check_upload_url(url: str, *, base_url: str, secret_key: str, now_unix: int) -> str:
    """The upload id of `url` when it is an unexpired upload URL signed with `secret_key` under the
    gateway's `base_url` (GATEWAY_INTERNAL_URL): same scheme, host and port, the upload path, nothing
    else. Raises UploadUrlRefused naming what is wrong, before anything is fetched."""
    if not secret_key:
        raise UploadUrlRefused("SWITCHBOARD_SECRET_KEY is not set: no upload URL can be verified")
    try:
        parts, base = urlsplit(url), urlsplit(base_url.rstrip("/"))
        origin, expected = _origin(parts), _origin(base)
    except ValueError as exc:  # e.g. a port that is not a number
        raise UploadUrlRefused(f"not a URL: {exc}") from exc
    if parts.username is not None or parts.password is not None or origin != expected:
        raise UploadUrlRefused(f"not the gateway's origin ({expected[0]}://{expected[1]}:{expected[2]})")
    prefix = base.path + UPLOAD_PATH
    upload_id = parts.path[len(prefix) :] if parts.path.startswith(prefix) else ""
    if not _UPLOAD_ID.fullmatch(upload_id) or parts.fragment:
        raise UploadUrlRefused(f"not an upload path ({prefix}<id>)")
    query = parse_qs(parts.query, keep_blank_values=True)
    expires, sig = query.get("expires", []), query.get("sig", [])
    if set(query) != {"expires", "sig"} or len(expires) != 1 or len(sig) != 1 or not expires[0].isdigit():
        raise UploadUrlRefused("the URL must carry exactly one expires and one sig")
    if now_unix > int(expires[0]):
        raise UploadUrlRefused("the upload URL has expired")
    if not verify_upload_signature(secret_key, upload_id, int(expires[0]), sig[0], now_unix):
        raise UploadUrlRefused("bad signature")
    return upload_id
