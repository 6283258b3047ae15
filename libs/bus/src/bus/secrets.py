"""The one way every service turns SWITCHBOARD_SECRET_KEY into the cipher for stored secrets.

A Fernet key (what `make up` generates) is used as it is; any other non-empty value is treated as a
passphrase and stretched with SHA-256, so every service derives the same key from the same setting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

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
