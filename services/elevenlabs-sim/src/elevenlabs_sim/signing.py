"""The ``ElevenLabs-Signature`` header of post-call webhooks.

``t=<unix secs>,v0=<hex HMAC-SHA256(key=secret, msg=f"{t}.{raw_body}")>``, both strings UTF-8.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "ElevenLabs-Signature"


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v0={digest}"
