"""One database transaction shared by the handlers of a batch of messages (`Bus.subscribe(batch=True)`).

While the bus runs a batch, every `TransactionScope` a handler opens joins the batch's transaction
instead of beginning and committing its own: a batch of N messages costs one session checkout, one
BEGIN and one COMMIT (one WAL flush) instead of N, and the consumer commits its offsets once, after
that COMMIT. Handlers stay per message and unchanged: they claim the message id in the inbox and do
their work in `async with uow:` as always.

Only for handlers whose every effect is in that one database transaction (no HTTP call, no
commit the handler relies on before doing something else): their effects are then deferred to
the batch's commit, and undone together with the whole batch when any message in it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class SharedTransaction:
    """The batch's session, opened by the first scope that joins, committed by the bus."""

    def __init__(self) -> None:
        self.session: AsyncSession | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None
        #: Set when an error left a joined scope: the batch must not commit, even if the handler
        #: swallowed the error (PostgreSQL would have aborted the transaction anyway).
        self.failed = False
        self._after_commit: list[Callable[[], None]] = []

    async def join(self, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncSession:
        """The batch's session, begun on first use. Every scope of a batch uses one sessionmaker."""
        if self.session is None:
            self._sessionmaker = sessionmaker
            self.session = sessionmaker()
            await self.session.begin()
        elif sessionmaker is not self._sessionmaker:
            raise RuntimeError("a batch's handlers must use one sessionmaker (one database)")
        return self.session

    async def commit(self) -> None:
        if self.failed:
            raise RuntimeError("a handler in the batch failed inside its transaction scope")
        if self.session is not None:
            await self.session.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    async def close(self) -> None:
        """Roll back what is not committed and give the connection back."""
        if self.session is not None:
            await self.session.close()
            self.session = None


_current: ContextVar[SharedTransaction | None] = ContextVar("bus_shared_transaction", default=None)


def current() -> SharedTransaction | None:
    """The batch transaction the running handler joins, or None outside a batch."""
    return _current.get()


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the running handler's effects are committed. Call it after the handler's
    transaction scope has closed: outside a batch `callback` then runs at once; inside one, after the
    batch's COMMIT, and never if the batch is rolled back (each message is then handled again alone
    and calls this again).

    For what tells other tasks of the process to look at the new state (e.g. wake a scheduler): told
    before the batch's commit, they would read the old one and go back to sleep. And for metrics
    counting what a handler did (these may be counted from inside the scope): counted at once, a
    rolled-back batch's messages would count twice.
    """
    shared = current()
    if shared is None:
        callback()
    else:
        shared._after_commit.append(callback)


def enter(shared: SharedTransaction | None) -> object:
    """Make `shared` current for this task; pass the result to `leave`."""
    return _current.set(shared)


def leave(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
