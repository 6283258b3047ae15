"""A request body streamed to memory, then to a temporary file once it outgrows a small buffer."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import Self

READ_CHUNK_BYTES = 256 * 1024


class SpooledBody:
    """Bytes appended as they arrive; read back in chunks. Holds at most `memory_bytes` in memory.

    Use as a context manager: the temporary file (if any) is deleted on exit.
    """

    def __init__(self, memory_bytes: int) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=memory_bytes)  # noqa: SIM115 - closed in __exit__
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._sha256.update(chunk)
        self.size += len(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        """The bytes written so far, from the start, `READ_CHUNK_BYTES` at a time."""
        self._file.seek(0)
        while chunk := self._file.read(READ_CHUNK_BYTES):
            yield chunk

    def head(self, limit: int) -> bytes:
        """At most the first `limit` bytes."""
        self._file.seek(0)
        return self._file.read(limit)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.close()
