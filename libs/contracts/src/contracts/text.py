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
    None when there is none."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and NUL in key:
                return inner.replace(NUL, REPLACEMENT)
            found = nul_path(item, inner)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


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
