"""Everything derived from SWITCHBOARD_SECRET_KEY: the cipher for stored secrets, and the signatures
of upload URLs and tool tokens. One home: no service derives a key or calls a cipher on its own.

Keys (`Keyring`):
- SWITCHBOARD_SECRET_KEY is the current key: everything new is encrypted and signed with it.
  SWITCHBOARD_PREVIOUS_SECRET_KEYS (comma-separated) are older keys, still accepted to decrypt and
  to verify, so a key can be rotated without a flag day (`python -m bus.secrets rotate`).
- A key is either random (32 bytes, urlsafe base64: `python -m bus.secrets new-key`, or any Fernet
  key) and used as it is, or a passphrase of at least 16 characters, stretched with scrypt
  (N=2^15, r=8, p=1) salted with SWITCHBOARD_SECRET_SALT (the same in every service, kept with
  the key). An empty or short key, or a passphrase without salt, refuses to start.
- Each key's master is split with HKDF-SHA256 into one subkey per purpose (`Purpose`): encryption,
  upload-URL signing, tool-token signing. A signature of one purpose never verifies as another.

Ciphertexts (`sb2.<key id>.<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>`) are bound to where
they live by AEAD associated data: a stored secret to its row (`row_context`: schema.table, primary
key, column), a secret in a message to its field (`message_context`). Decrypted under any other
context, a ciphertext fails. A service storing a secret it received in a message re-binds it to its
row (`Keyring.rebind`): the clear value never leaves this module.

Stored secrets live in text columns named `*_encrypted`; the rotate command finds them by that
name. Fernet tokens made before this format (version 1, unbound, key as is or SHA-256 of a
passphrase) still decrypt; the rotate command turns them into bound `sb2` ciphertexts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Self
from urllib.parse import SplitResult, parse_qs, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import Field, SecretStr, model_validator
from sqlalchemy import Connection, MetaData, Table, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import QueryableAttribute

from bus.db import make_engine
from bus.settings import BusSettings

KEY_SETTING = "SWITCHBOARD_SECRET_KEY"
PREVIOUS_KEYS_SETTING = "SWITCHBOARD_PREVIOUS_SECRET_KEYS"
SALT_SETTING = "SWITCHBOARD_SECRET_SALT"
MIN_PASSPHRASE_CHARS = 16
MIN_SALT_CHARS = 16
# scrypt cost: 32 MiB and ~0.1 s, paid once per process and key (the derived master is kept).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1

Purpose = Literal["encryption", "upload-url", "tool-token"]
_PURPOSES: tuple[Purpose, ...] = ("encryption", "upload-url", "tool-token")
_VERSION = "sb2"
_NONCE_BYTES = 12


class SecretKeyError(ValueError):
    """A key setting that cannot be used; the message names the setting and why, never the value."""


class Undecryptable(ValueError):
    """Not a ciphertext of any configured key for this context (wrong key, moved, or tampered)."""


# ---- keys -------------------------------------------------------------------------------------


def new_key() -> str:
    """A random key for SWITCHBOARD_SECRET_KEY: 32 bytes, urlsafe base64 (also a valid Fernet key)."""
    return Fernet.generate_key().decode()


def _random_key(value: str) -> bytes | None:
    """The 32 bytes of a random key, or None when `value` is not one (then it is a passphrase)."""
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 and len(value) == 44 else None


def check_key(value: str, salt: str, setting: str = KEY_SETTING) -> None:
    """Raise `SecretKeyError` unless `value` can be a key (cheap: nothing is derived)."""
    if not value.strip():
        raise SecretKeyError(f"{setting} is empty: generate a key with `python -m bus.secrets new-key`")
    if _random_key(value) is not None:
        return
    if len(value) < MIN_PASSPHRASE_CHARS:
        raise SecretKeyError(
            f"{setting} is too short: a passphrase needs at least {MIN_PASSPHRASE_CHARS} characters"
            " (or use a random key: `python -m bus.secrets new-key`)"
        )
    if len(salt) < MIN_SALT_CHARS:
        raise SecretKeyError(
            f"{setting} is a passphrase: set {SALT_SETTING} too (at least {MIN_SALT_CHARS} characters,"
            " e.g. `python -m bus.secrets new-key`; the same in every service, kept with the key)"
        )


@dataclass(frozen=True)
class _Key:
    kid: str
    subkeys: dict[Purpose, bytes]
    legacy: Fernet  # version-1 tokens: Fernet with the key as is, or SHA-256 of the passphrase
    raw: bytes  # version-1 signatures: HMAC keyed by the setting's value itself

    @classmethod
    def derive(cls, value: str, salt: str) -> _Key:
        raw = _random_key(value)
        if raw is not None:
            master, legacy = raw, Fernet(value.encode())
        else:
            scrypt = Scrypt(salt=salt.encode(), length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
            master = scrypt.derive(value.encode())
            legacy = Fernet(base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()))

        def hkdf(info: str) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode()).derive(master)

        subkeys = {purpose: hkdf(f"switchboard/v2/{purpose}") for purpose in _PURPOSES}
        return cls(
            kid=hkdf("switchboard/v2/key-id")[:4].hex(), subkeys=subkeys, legacy=legacy, raw=value.encode()
        )


def row_context(table: str, primary_key: str | int | Sequence[str | int], column: str) -> str:
    """Associated data of a stored secret: `table` is `schema.table`, `primary_key` the row's key
    (one value, or the values of a composite key in key order), `column` the `*_encrypted` column."""
    key = [primary_key] if isinstance(primary_key, str | int) else list(primary_key)
    return json.dumps(["row", table, [str(v) for v in key], column], separators=(",", ":"))


def column_context(column: QueryableAttribute[Any], primary_key: str | int | Sequence[str | int]) -> str:
    """`row_context` of an ORM column (e.g. `Conversation.ecommerce_credentials_encrypted`) in the
    row with `primary_key`: the same string the rotate command computes from the catalog."""
    col = column.property.columns[0]
    table = col.table
    return row_context(f"{table.schema}.{table.name}", primary_key, col.name)


def message_context(field_name: str) -> str:
    """Associated data of a secret travelling in a command or event field (e.g. `token_encrypted`)."""
    return json.dumps(["message", field_name], separators=(",", ":"))


class Keyring:
    """The current key and the previous ones (see the module docstring). Build it once per process:
    a passphrase costs one scrypt derivation."""

    def __init__(self, current: str, previous: Sequence[str] = (), *, salt: str = "") -> None:
        check_key(current, salt)
        for value in previous:
            check_key(value, salt, PREVIOUS_KEYS_SETTING)
        self._keys = [_Key.derive(value, salt) for value in (current, *previous)]
        self._legacy = MultiFernet([key.legacy for key in self._keys])

    @property
    def current_kid(self) -> str:
        return self._keys[0].kid

    def encrypt(self, plain: str, *, context: str) -> str:
        """`sb2.<kid>.<...>`: AES-256-GCM under the current key, bound to `context`."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._keys[0].subkeys["encryption"]).encrypt(nonce, plain.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_VERSION}.{self._keys[0].kid}.{body}"

    def decrypt(self, token: str, *, context: str) -> str:
        """The clear value; raises `Undecryptable`. A version-1 (Fernet) token is not bound to any
        context: it decrypts anywhere until the rotate command has re-encrypted it."""
        version, _, rest = token.partition(".")
        if version != _VERSION:
            try:
                return self._legacy.decrypt(token.encode()).decode()
            except (InvalidToken, UnicodeDecodeError) as exc:
                raise Undecryptable("not a ciphertext of any configured key") from exc
        kid, _, body = rest.partition(".")
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise Undecryptable("malformed ciphertext") from exc
        nonce, sealed = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        for key in self._keys:
            if key.kid != kid:
                continue
            try:
                plain = AESGCM(key.subkeys["encryption"]).decrypt(nonce, sealed, context.encode())
                return plain.decode()
            except (InvalidTag, ValueError, UnicodeDecodeError):
                continue
        raise Undecryptable("not a ciphertext of any configured key for this context")

    def rebind(self, token: str, *, from_context: str, to_context: str) -> str:
        """The same secret under the current key, bound to `to_context`; raises `Undecryptable`."""
        return self.encrypt(self.decrypt(token, context=from_context), context=to_context)

    def is_current(self, token: str) -> bool:
        """True when `token` is an `sb2` ciphertext of the current key (nothing for rotate to do)."""
        version, _, rest = token.partition(".")
        return version == _VERSION and rest.partition(".")[0] == self._keys[0].kid

    def sign(self, purpose: Purpose, message: str) -> str:
        """Hex HMAC-SHA256 of `message` under the current key's `purpose` subkey."""
        return hmac.new(self._keys[0].subkeys[purpose], message.encode(), hashlib.sha256).hexdigest()

    def verify(self, purpose: Purpose, message: str, signature: str) -> bool:
        """True when `signature` is `sign(purpose, message)` under any configured key (constant time)."""
        return self._verify([key.subkeys[purpose] for key in self._keys], message, signature)

    def verify_v1(self, message: str, signature: str) -> bool:
        """True when `signature` is a version-1 signature: HMAC-SHA256 keyed by a key setting's value
        itself, as before subkeys (tool tokens of that time; accepted only while upgrading)."""
        return self._verify([key.raw for key in self._keys], message, signature)

    @staticmethod
    def _verify(keys: list[bytes], message: str, signature: str) -> bool:
        given = signature.lower().encode("utf-8", "replace")
        found = False
        for key in keys:
            expected = hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
            found |= hmac.compare_digest(expected.encode(), given)
        return found


class SecretKeySettings(BusSettings):
    """BusSettings plus the keys, for the services that encrypt, decrypt or sign. Refuses to start
    (a validation error naming the setting, never its value) on an unusable key."""

    switchboard_secret_key: SecretStr = Field(default=SecretStr(""), alias=KEY_SETTING)
    switchboard_previous_secret_keys: SecretStr = Field(default=SecretStr(""), alias=PREVIOUS_KEYS_SETTING)
    switchboard_secret_salt: SecretStr = Field(default=SecretStr(""), alias=SALT_SETTING)

    @model_validator(mode="after")
    def _keys_are_usable(self) -> Self:
        salt = self.switchboard_secret_salt.get_secret_value()
        check_key(self.switchboard_secret_key.get_secret_value(), salt)
        for value in self._previous_keys():
            check_key(value, salt, PREVIOUS_KEYS_SETTING)
        return self

    def _previous_keys(self) -> list[str]:
        raw = self.switchboard_previous_secret_keys.get_secret_value()
        return [value.strip() for value in raw.split(",") if value.strip()]

    @cached_property
    def keyring(self) -> Keyring:
        return Keyring(
            self.switchboard_secret_key.get_secret_value(),
            self._previous_keys(),
            salt=self.switchboard_secret_salt.get_secret_value(),
        )


# ---- signed upload URLs (claim checks) --------------------------------------------------------
# The gateway stages a knowledge-base upload and puts a URL to it in the command; provisioning
# fetches it. Provisioning fetches nothing else: a command names a URL, and anyone who can publish
# a command could otherwise make it fetch internal URLs and store their content upstream.

UPLOAD_PATH = "/internal/uploads/"
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class UploadUrlRefused(ValueError):
    """A `file_url` that is not a live upload URL signed by our gateway; the reason is the message."""


def _upload_message(upload_id: str, expires_unix: int) -> str:
    return f"upload|{upload_id}|{expires_unix}"


def sign_upload(keyring: Keyring, upload_id: str, expires_unix: int) -> str:
    """Hex HMAC-SHA256 of `upload|<id>|<expiry>` under the current key's upload-URL subkey."""
    return keyring.sign("upload-url", _upload_message(upload_id, expires_unix))


def verify_upload_signature(
    keyring: Keyring, upload_id: str, expires_unix: int, sig: str, now_unix: int
) -> bool:
    if now_unix > expires_unix:
        return False
    return keyring.verify("upload-url", _upload_message(upload_id, expires_unix), sig)


def upload_url(base_url: str, keyring: Keyring, upload_id: str, expires_unix: int) -> str:
    """`<gateway base>/internal/uploads/<id>?expires=<unix s>&sig=<hex>`; the gateway serves it."""
    sig = sign_upload(keyring, upload_id, expires_unix)
    return f"{base_url.rstrip('/')}{UPLOAD_PATH}{upload_id}?expires={expires_unix}&sig={sig}"


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), parts.port or {"http": 80, "https": 443}.get(scheme)


def check_upload_url(url: str, *, base_url: str, keyring: Keyring, now_unix: int) -> str:
    """The upload id of `url` when it is an unexpired upload URL signed by `keyring` under the
    gateway's `base_url` (GATEWAY_INTERNAL_URL): same scheme, host and port, the upload path, nothing
    else. Raises UploadUrlRefused naming what is wrong, before anything is fetched."""
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
    if not verify_upload_signature(keyring, upload_id, int(expires[0]), sig[0], now_unix):
        raise UploadUrlRefused("bad signature")
    return upload_id


# ---- tool tokens --------------------------------------------------------------------------------
# ElevenLabs sends a tool's token (held in a workspace secret that the tool's request header points
# at) with every mid-call tool call. Provisioning mints it, tool-webhooks reads it: the signature
# proves we made it for this route, the lineage and generation it names are then checked against
# tool-webhooks' record of the tool (deleted? rotated past this generation?).

TOOL_TOKEN_VERSION = "v2"  # noqa: S105 - a format version, not a secret
_TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_GENERATION = re.compile(r"[1-9][0-9]{0,8}")


@dataclass(frozen=True)
class ToolTokenClaim:
    """What a genuine tool token names: its tool's lineage (`token_id`) and `generation`."""

    token_id: str
    generation: int


def _tool_token_message(route: str, token_id: str, generation: int) -> str:
    return f"tool|{route}|{token_id}|{generation}"


def mint_tool_token(keyring: Keyring, route: str, token_id: str, generation: int) -> str:
    """``v2.<token_id>.<generation>.<hex HMAC-SHA256 of "tool|<route>|<token_id>|<generation>">``
    under the current key's tool-token subkey. `route` is e.g. ``ecommerce/orders``."""
    if not _TOKEN_ID.fullmatch(token_id) or not _GENERATION.fullmatch(str(generation)):
        raise ValueError("token_id must be 1-100 of [A-Za-z0-9_-] and generation a positive integer")
    signature = keyring.sign("tool-token", _tool_token_message(route, token_id, generation))
    return f"{TOOL_TOKEN_VERSION}.{token_id}.{generation}.{signature}"


def read_tool_token(keyring: Keyring, route: str, token: str | None) -> ToolTokenClaim | None:
    """The claim of `token` when it is a v2 tool token signed (under any configured key) for
    `route`; None for anything else. Says nothing about whether the tool still accepts it."""
    parts = (token or "").strip().split(".")
    if len(parts) != 4 or parts[0] != TOOL_TOKEN_VERSION:
        return None
    _, token_id, generation, signature = parts
    if not _TOKEN_ID.fullmatch(token_id) or not _GENERATION.fullmatch(generation):
        return None
    if not keyring.verify("tool-token", _tool_token_message(route, token_id, int(generation)), signature):
        return None
    return ToolTokenClaim(token_id, int(generation))


def v1_tool_token_valid(keyring: Keyring, route: str, token: str | None) -> bool:
    """A version-1 token (``v1.<nonce>.<hex HMAC(key setting, "<route>|<nonce>")>``): bound to its
    route only, never expiring, surviving its tool. Only for upgrading deployments whose tools still
    send one (TOOL_WEBHOOKS_ACCEPT_V1_TOOL_TOKENS) until each tool's token is rotated."""
    version, sep, rest = (token or "").strip().partition(".")
    nonce, sep2, signature = rest.rpartition(".")
    if version != "v1" or not sep or not sep2 or not nonce or len(nonce) > 200:
        return False
    return keyring.verify_v1(f"{route}|{nonce}", signature)


# ---- re-encryption: `python -m bus.secrets rotate` ---------------------------------------------


@dataclass
class ColumnReport:
    """What `rotate` did to one `*_encrypted` column. `unreadable`: primary keys of the rows no
    configured key decrypts for their row (their values are left as they are)."""

    table: str
    column: str
    scanned: int = 0
    rotated: int = 0
    current: int = 0
    unreadable: list[list[str]] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.table}.{self.column}: {self.scanned} scanned, {self.rotated} re-encrypted,"
            f" {self.current} already current, {len(self.unreadable)} unreadable"
        )


def _encrypted_columns(connection: Connection, schemas: Sequence[str] | None) -> list[tuple[Table, str]]:
    """Every text column named `*_encrypted` of every table of `schemas` (default: all schemas but
    PostgreSQL's own)."""
    found = connection.execute(
        text(
            "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t"
            " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE c.column_name LIKE '%\\_encrypted' AND t.table_type = 'BASE TABLE'"
            " AND c.data_type IN ('text', 'character varying')"
            " AND c.table_schema NOT IN ('pg_catalog', 'information_schema')"
            " AND (CAST(:schemas AS text[]) IS NULL OR c.table_schema = ANY(CAST(:schemas AS text[])))"
            " ORDER BY 1, 2, 3"
        ),
        {"schemas": list(schemas) if schemas else None},
    ).all()
    metadata = MetaData()
    columns = []
    for schema, table_name, column in found:
        key = f"{schema}.{table_name}"
        table = metadata.tables.get(key) or Table(
            table_name, metadata, schema=schema, autoload_with=connection
        )
        columns.append((table, str(column)))
    return columns


async def rotate(
    engine: AsyncEngine, keyring: Keyring, *, batch_size: int = 500, schemas: Sequence[str] | None = None
) -> list[ColumnReport]:
    """Re-encrypt every stored secret that is not yet an `sb2` ciphertext of the current key: with
    the current key, bound to its row. Idempotent (current values are skipped) and resumable (one
    transaction per batch; a run stopped half-way is finished by the next). A row changed by a
    service meanwhile is left to it (the update only applies to the value that was read)."""
    async with engine.connect() as connection:
        columns = await connection.run_sync(_encrypted_columns, schemas)
    reports = []
    for table, column in columns:
        report = ColumnReport(f"{table.schema}.{table.name}", column)
        reports.append(report)
        keys = list(table.primary_key.columns)
        value_column = table.c[column]
        last: tuple[object, ...] | None = None
        while True:
            query = select(*keys, value_column).where(value_column.is_not(None)).order_by(*keys)
            if last is not None:
                query = query.where(tuple_(*keys) > tuple_(*last))
            async with engine.begin() as connection:
                rows = (await connection.execute(query.limit(batch_size))).all()
                for row in rows:
                    key, value = tuple(row[:-1]), str(row[-1])
                    report.scanned += 1
                    if keyring.is_current(value):
                        report.current += 1
                        continue
                    context = row_context(report.table, [str(v) for v in key], column)
                    try:
                        fresh = keyring.rebind(value, from_context=context, to_context=context)
                    except Undecryptable:
                        report.unreadable.append([str(v) for v in key])
                        continue
                    where = [k == v for k, v in zip(keys, key, strict=True)]
                    result = await connection.execute(
                        update(table).where(*where, value_column == value).values({column: fresh})
                    )
                    report.rotated += result.rowcount
            if len(rows) < batch_size:
                break
            last = tuple(rows[-1][:-1])
    return reports


async def main(argv: Sequence[str] | None = None, settings: SecretKeySettings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bus.secrets", description="Keys and stored secrets.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("new-key", help="print a new random key for SWITCHBOARD_SECRET_KEY")
    rotating = commands.add_parser(
        "rotate",
        help="re-encrypt every stored secret (DATABASE_URL, text columns *_encrypted) with the current"
        " key, bound to its row; safe to run again, and while the services run",
    )
    rotating.add_argument("--batch-size", type=int, default=500, help="rows per transaction")
    rotating.add_argument(
        "--schema", action="append", help="only this schema (repeatable); default: every schema"
    )
    args = parser.parse_args(argv)
    if args.command == "new-key":
        print(new_key())
        return 0
    try:
        settings = settings or SecretKeySettings()
    except ValueError as exc:  # pydantic's ValidationError: names the setting, never the value
        print(exc, file=sys.stderr)
        return 2
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        reports = await rotate(engine, settings.keyring, batch_size=args.batch_size, schemas=args.schema)
    finally:
        await engine.dispose()
    for report in reports:
        print(report.line())
        for key in report.unreadable:
            print(f"  unreadable: {report.table} primary key {key}")
    if any(report.unreadable for report in reports):
        print("some secrets are readable by none of the configured keys; they were left as they are")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
