"""Text PostgreSQL cannot store: the NUL character (U+0000).

PostgreSQL's TEXT and VARCHAR reject it ("invalid byte sequence for encoding UTF8: 0x00", SQLSTATE
22021) and so does JSONB (`\\u0000 cannot be converted to text`, SQLSTATE 22P05): a value carrying
one fails wherever it is stored, however far downstream (https://www.postgresql.org/docs/15/
datatype-character.html: "the character with code zero cannot be stored"). Clients' text is
refused at the edge (`nul_path`); a third party's (ElevenLabs' webhooks) is kept with the
character replaced (`without_nul`), since refusing it would lose a call's outcome.
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
REPLACEMENT = "\ufffd"  # what a decoder puts for a character it cannot represent
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"


def nul_path(value: Any, path: str = "") -> str | None:
    """Where the first NUL in `value` is: a dotted path of keys and indexes into nested dicts and
    lists ("recipients.3.name", "" for `value` itself, a key's own path for a key holding one);
    None when there is none. Every recipient of a 100,000-row submission passes here, so a path
    is only built for a NUL or a nested container."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                return _joined(path, key).replace(NUL, REPLACEMENT)
            found = _nul_in_item(item, path, key)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_in_item(item, path, index)
            if found is not None:
                return found
    return None


def _nul_in_item(item: Any, path: str, key: object) -> str | None:
    if isinstance(item, str):
        return _joined(path, key) if NUL in item else None
    if isinstance(item, dict | list | tuple):
        return nul_path(item, _joined(path, key))
    return None


def _joined(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def without_nul(value: Any, replacement: str = REPLACEMENT) -> Any:
    """`value` with every NUL in its strings (keys too, in nested dicts and lists) replaced by
    `replacement` (U+FFFD unless given); the same object when it has none."""
    if nul_path(value) is None:
        return value
    if isinstance(value, str):
        return value.replace(NUL, replacement)
    if isinstance(value, dict):
        return {without_nul(key, replacement): without_nul(item, replacement) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(without_nul(item, replacement) for item in value)
    return value
