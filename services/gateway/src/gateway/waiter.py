"""Wakes the replica holding an HTTP request when its operation completes.

Whichever replica projects an outcome commits it and `pg_notify`s; every replica LISTENs, so
the answer reaches the replica that holds the request, after the read model already shows it.
A slow poll backs the notification up (a LISTEN connection can drop).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

from gateway.repository import OPERATIONS_CHANNEL

log = structlog.get_logger("gateway.waiter")

_POLL_INTERVAL_S = 0.5


class OperationWaiter:
    def __init__(self, database_url: str) -> None:
        self._dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self._waiters: dict[str, asyncio.Event] = {}
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(OPERATIONS_CHANNEL, self._on_notify)

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        event = self._waiters.get(payload)
        if event is not None:
            event.set()

    def register(self, operation_id: str) -> None:
        """Register before the command is committed, so no notification can be missed."""
        self._waiters[operation_id] = asyncio.Event()

    def forget(self, operation_id: str) -> None:
        self._waiters.pop(operation_id, None)

    async def wait(self, operation_id: str, within: float) -> bool:
        """Wait until notified or `within` seconds passed; True when notified (then re-read)."""
        event = self._waiters[operation_id]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), within)
        return event.is_set()

    @property
    def poll_interval(self) -> float:
        return _POLL_INTERVAL_S
