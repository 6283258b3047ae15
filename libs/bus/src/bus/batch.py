"""One database transaction shared by the handlers of a batch of messages (`Bus.subscribe(batch=True)`).

While the bus runs a batch, every `TransactionScope` a handler opens joins the batch's transaction
instead of beginning and committing its own: a batch of N messages costs one session checkout, one
BEGIN and one COMMIT (one WAL flush) instead of N, and the consumer commits its offsets once, after
that COMMIT. Handlers stay per message and unchanged: they claim the message id in the inbox and do
their work in `async with uow:` as always.

What every handler of a batch writes the same way is written once for the batch: the inbox claims
of all its messages are one INSERT (`bus.inbox.claim`), and a repository can gather rows into one
write made just before the COMMIT (`gather`).

Only for handlers whose every effect is in that one database transaction (no HTTP call, no
commit the handler relies on before doing something else): their effects are then deferred to
the batch's commit, and undone together with the whole batch when any message in it fails.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

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
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        self._gathered: dict[str, list[Any]] = {}
        #: The ids of the batch's messages, in order (set by the bus): claimed together.
        self.message_ids: list[str] = []
        #: Per (inbox table, consumer): each batch message id -> whether its claim is still to be
        #: taken (True: new and not yet claimed by its handler). Kept by `bus.inbox.claim`.
        self.claims: dict[tuple[str, str], dict[str, bool]] = {}

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
        for write in self._before_commit:
            await write()
        if self.session is not None:
            await self.session.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def before_commit(self, write: Callable[[], Awaitable[None]]) -> None:
        """Run `write` (in the batch's transaction) once every handler has run, before the COMMIT."""
        self._before_commit.append(write)

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


def gather(key: str, rows: list[Any], write: Callable[[list[Any]], Awaitable[None]]) -> bool:
    """Inside a batch: add `rows` to the batch's list under `key`, and have `write(all rows)` run
    once, after every handler, just before the batch's COMMIT; True. Outside a batch: False, and the
    caller writes its rows now. For what each handler would otherwise write at the end of its own
    transaction (a log of changes that must be appended last, under a lock)."""
    shared = current()
    if shared is None:
        return False
    gathered = shared._gathered.get(key)
    if gathered is None:
        gathered = shared._gathered[key] = []
        shared.before_commit(lambda: write(gathered))
    gathered.extend(rows)
    return True


def enter(shared: SharedTransaction | None) -> object:
    """Make `shared` current for this task; pass the result to `leave`."""
    return _current.set(shared)


def leave(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
