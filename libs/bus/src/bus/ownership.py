"""Exclusive ownership of one piece of work by one live worker, fenced by PostgreSQL.

For work with an upstream side effect that has no idempotency key (a phone call), a second
delivery of the same message must never act while the first handler still lives: not after a
rebalance, not when the first worker was paused (SIGSTOP, a GC stall, a long backoff) past the
consumer session timeout. Ownership is a transaction-level advisory lock held on a dedicated
connection for the whole handler:

- a second delivery blocks on the lock until the owner finishes (its outcome is committed) or dies;
- a killed owner's connection closes, so the lock goes at once;
- a paused owner stops sending its heartbeat, so PostgreSQL ends its session after `lease_s`
  (`idle_in_transaction_session_timeout`, set for this transaction only) and the lock goes with it;
- a resumed stale owner finds its connection terminated when it calls `ensure()`, which it does
  right before every side effect, and its outcome transaction (which runs on the same connection,
  see `sessionmaker`) can no longer commit: ownership and the recorded outcome are one transaction.

What no client-side fence can close: a pause that lands between a successful `ensure()` and the
bytes of the request leaving the process (microseconds of Python). The next owner's recovery
covers that too, as long as such a request becomes visible upstream within its settle time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bus.queued import BusSession

log = structlog.get_logger("bus.ownership")


class OwnershipLost(Exception):
    """Our lock connection is gone (the server ended it): another worker may own the work now.
    Nothing more may be done upstream; the handler fails and its retry waits for the new owner."""


class Ownership:
    """The lock on one key, held by this worker; built by `acquire`."""

    def __init__(self, connection: AsyncConnection, key: str, lease_s: float) -> None:
        self._connection = connection
        self._key = key
        self._lease_s = lease_s
        self._io = asyncio.Lock()  # one statement at a time on the connection
        self._lost: BaseException | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.acquired_at = time.monotonic()

    async def ensure(self) -> None:
        """Raise OwnershipLost unless the lock connection answers now (a round trip, not a flag:
        after a pause the heartbeat may not have run yet)."""
        if self._lost is None:
            try:
                async with self._io:
                    await self._connection.execute(text("SELECT 1"))
            except Exception as exc:  # any failure: the connection (and the lock) cannot be trusted
                self._lost = exc
        if self._lost is not None:
            log.warning("bus.ownership.lost", key=self._key, error=repr(self._lost))
            raise OwnershipLost(self._key) from self._lost

    async def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        """Sessions that join the owned transaction: what they write commits when `acquire`'s
        block ends, together with the lock release, or not at all if ownership was lost.
        The heartbeat stops here (the sessions use the connection from now on); raises
        OwnershipLost if the connection is gone already."""
        await self._stop_heartbeat()
        await self.ensure()
        return async_sessionmaker(
            bind=self._connection, expire_on_commit=False, sync_session_class=BusSession
        )

    def _start_heartbeat(self) -> None:
        self._heartbeat = asyncio.create_task(self._beat(), name=f"ownership-heartbeat:{self._key}")

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        if task is None:
            return
        async with self._io:  # never cancel it in the middle of a statement
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _beat(self) -> None:
        # Keeps the session from being idle in transaction for `lease_s` while we are alive.
        while True:
            await asyncio.sleep(self._lease_s / 4)  # the heartbeat period
            try:
                async with self._io:
                    await self._connection.execute(text("SELECT 1"))
            except Exception as exc:
                self._lost = exc
                return


@contextlib.asynccontextmanager
async def acquire(engine: AsyncEngine, key: str, *, lease_s: float) -> AsyncIterator[Ownership]:
    """Own `key` for the block: waits while another live worker owns it. On a normal exit the
    owned transaction commits (releasing the lock); on an exception it rolls back."""
    async with engine.connect() as connection:
        # One round trip: the lease (for this transaction only) and the lock. Waiting for the lock
        # is not idle in transaction, so the order in which the two are set does not matter.
        await connection.execute(
            text(
                "SELECT set_config('idle_in_transaction_session_timeout', :ms, true),"
                " pg_advisory_xact_lock(hashtext(:k))"
            ),
            {"ms": str(max(1, round(lease_s * 1000))), "k": key},
        )
        owner = Ownership(connection, key, lease_s)
        owner._start_heartbeat()
        try:
            yield owner
        except BaseException:
            await owner._stop_heartbeat()
            try:
                await connection.rollback()
            except Exception:  # the server ended the session: never hand it back to the pool
                await connection.invalidate()
            raise
        await owner._stop_heartbeat()
        try:
            await connection.commit()
        except Exception as exc:
            await connection.invalidate()
            raise OwnershipLost(key) from exc
