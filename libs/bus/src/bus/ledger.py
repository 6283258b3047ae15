"""The upstream-command ledger: how a command whose upstream side effect has no idempotency key
(ElevenLabs: create a tool, import a number, place a call) acts upstream at most once, across
redeliveries, crashes and pauses.

Each such command is one row of its service's ledger table (`make_ledger_table`, in the service's
own schema) and runs in three steps (`CommandRunner.run`):

1. a short transaction records the command as `started` (or finds its earlier row: a redelivery of
   a finished command does nothing; a `started` one means an earlier delivery may already have
   acted upstream, so the use case *recovers*: it looks the result up upstream before acting);
2. the use case's upstream calls, outside any transaction; it raises `CommandError` (the
   ElevenLabs client's `UpstreamError` is one) when the command cannot be carried out;
3. one transaction: inbox claim, the row finished, exactly one outcome event (the success event or
   the failure event) plus any further events in the outbox, then the use case's local writes
   (an event they publish comes after the outcome's).

With fencing (`Fencing`, built on `bus.ownership`) the three steps run while the handler owns the
command: a second delivery waits while the first handler lives, so recovery starts only once the
earlier owner is gone; an owner that lost the lock (paused too long) learns it at
`UpstreamCommand.owner.ensure()` before it acts upstream, and its outcome commits in the owned
transaction or not at all. Without fencing `ensure()` always passes.

"Attempt" is not a word of this module: in Switchboard an attempt is one dial of a recipient.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import structlog
from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bus.errors import CommandError
from bus.ownership import Ownership, OwnershipLost
from contracts.base import Command, CommandFailed, Event, utcnow

log = structlog.get_logger("bus.ledger")

_E = TypeVar("_E", bound=Event)

# Times a handler starts over after losing ownership of its command before the bus retries it.
OWNERSHIP_ROUNDS = 3


class CommandStatus:
    """Values of the ledger's `status` column."""

    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


def make_ledger_table(metadata: MetaData) -> Table:
    """The ledger table `upstream_commands` on a service's metadata (so Alembic migrates it): one
    row per command, committed before any upstream call."""
    return Table(
        "upstream_commands",
        metadata,
        Column("message_id", String(200), primary_key=True),
        Column("command_type", String(100), nullable=False),
        Column("status", String(20), nullable=False),
        Column("resource_id", String(200)),
        Column("started_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("finished_at", DateTime(timezone=True)),
    )


@dataclass(frozen=True)
class LedgerEntry:
    """One row of the ledger; `resource_id` is what the command created or touched upstream."""

    message_id: str
    command_type: str
    status: str
    resource_id: str | None
    started_at: datetime
    finished_at: datetime | None


class CommandLedger:
    """Every query of one service's ledger table, in the caller's transaction."""

    def __init__(self, session: AsyncSession, table: Table) -> None:
        self.session = session
        self.table = table

    async def start(self, message_id: str, command_type: str) -> tuple[LedgerEntry, bool]:
        """Insert a `started` row unless one exists; returns (the row, created now). A new row
        comes back from the INSERT itself: the read that follows is only for a redelivery's."""
        inserted = (
            await self.session.execute(
                insert(self.table)
                .values(message_id=message_id, command_type=command_type, status=CommandStatus.STARTED)
                .on_conflict_do_nothing()
                .returning(*self.table.c)
            )
        ).first()
        if inserted is not None:
            return LedgerEntry(**inserted._mapping), True
        entry = await self.get(message_id)
        assert entry is not None  # there before
        return entry, False

    async def finish(self, message_id: str, status: str, resource_id: str | None, at: datetime) -> None:
        await self.session.execute(
            update(self.table)
            .where(self.table.c.message_id == message_id)
            .values(status=status, resource_id=resource_id, finished_at=at)
        )

    async def get(self, message_id: str) -> LedgerEntry | None:
        row = (
            await self.session.execute(select(self.table).where(self.table.c.message_id == message_id))
        ).first()
        return LedgerEntry(**row._mapping) if row is not None else None


class LedgerScope(Protocol):
    """What the runner needs of a service's unit of work (`bus.uow.TransactionScope` with a
    `commands` ledger attached in `_open`)."""

    commands: CommandLedger

    async def claim(self, message_id: str) -> bool: ...

    async def publish(self, event: Event, key: str | None) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


U = TypeVar("U", bound=LedgerScope)


class Owner(Protocol):
    """The fence a use case checks right before every upstream side effect."""

    acquired_at: float  # time.monotonic() when this handler became the owner

    async def ensure(self) -> None:
        """Raise `OwnershipLost` unless this handler still owns the command."""


class _Unowned:
    """The owner of a command run without fencing: `ensure` always passes."""

    def __init__(self) -> None:
        self.acquired_at = time.monotonic()

    async def ensure(self) -> None:
        return None


@dataclass(frozen=True)
class UpstreamCommand:
    """Step 1's answer, handed to the use case: is this a recovery, since when the command has
    been started (the first delivery's time: what an earlier delivery created upstream is newer),
    and the owner to `ensure()` before acting upstream."""

    recovering: bool
    started_at: datetime
    owner: Owner


@dataclass
class Outcome(Generic[U]):
    """What a use case produced: the outcome event (published with `key`), the resource it is
    about, the local writes that go with it, and further events as (event, key)."""

    event: Event
    key: str
    resource_id: str | None = None
    local: list[Callable[[U], Awaitable[None]]] = field(default_factory=list)
    extra: list[tuple[Event, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Fencing(Generic[U]):
    """How a service owns its commands: `acquire(message_id)` holds the command (see
    `bus.ownership.acquire`) and `scope(sessionmaker)` is the service's unit of work on the owned
    connection, so step 3 commits with the ownership or not at all."""

    acquire: Callable[[str], AbstractAsyncContextManager[Ownership]]
    scope: Callable[[async_sessionmaker[AsyncSession]], U]


Action = Callable[[UpstreamCommand], Awaitable[Outcome[U]]]
Failure = Callable[[CommandError], Event]


def caused_by(command: Command, event_type: type[_E], **fields: Any) -> _E:
    """An event answering `command`: same correlation, caused by its message."""
    return event_type(correlation_id=command.correlation_id, causation_id=command.message_id, **fields)


def command_failed(command: Command, exc: CommandError) -> CommandFailed:
    """The failure event of any command: `CommandFailed` with the error's status, error and detail."""
    return caused_by(
        command,
        CommandFailed,
        command_type=command.type,
        status_code=exc.status_code,
        error=exc.error,
        detail=exc.detail,
    )


class CommandRunner(Generic[U]):
    """Runs a service's upstream commands in the three steps (see the module docstring).

    `uow()` opens the service's unit of work; `service` prefixes the log events
    (`<service>.command.redelivered|recovering|failed|done|ownership_lost`).
    """

    def __init__(self, uow: Callable[[], U], *, service: str, fencing: Fencing[U] | None = None) -> None:
        self._uow = uow
        self._service = service
        self._fencing = fencing

    async def run(
        self,
        command: Command,
        action: Action[U],
        failure: Failure | None = None,
    ) -> None:
        """Carry `command` out once. `action` does step 2; a `CommandError` it raises becomes
        `failure(exc)` (default `command_failed`). With fencing, a handler that lost ownership
        starts over (the new owner's outcome is then found in step 1) up to `OWNERSHIP_ROUNDS`
        times, then raises `OwnershipLost` for the bus to retry the message."""
        if self._fencing is None:
            await self._run(command, action, failure or (lambda exc: command_failed(command, exc)))
            return
        for _ in range(OWNERSHIP_ROUNDS):
            try:
                await self._run(command, action, failure or (lambda exc: command_failed(command, exc)))
                return
            except OwnershipLost:
                # We were silent too long (paused, starved): another worker may own the command now.
                # Start over: wait for the lock, then find what the new owner did (or recover).
                log.warning(f"{self._service}.command.ownership_lost")
        raise OwnershipLost(command.message_id)

    async def _run(self, command: Command, action: Action[U], failure: Failure) -> None:
        async with self._owned(command.message_id) as (owner, closing):
            async with self._uow() as uow:
                entry, created = await uow.commands.start(command.message_id, command.type)
            if entry.status != CommandStatus.STARTED:
                log.info(f"{self._service}.command.redelivered", status=entry.status)
                return
            if not created:
                # Fenced: we hold the lock, so the earlier owner is gone (crashed, or paused too long).
                log.warning(f"{self._service}.command.recovering", started_at=entry.started_at.isoformat())
            try:
                await owner.ensure()
                outcome = await action(
                    UpstreamCommand(recovering=not created, started_at=entry.started_at, owner=owner)
                )
                final = CommandStatus.SUCCEEDED
            except CommandError as exc:
                log.info(f"{self._service}.command.failed", status_code=exc.status_code, error=exc.error)
                outcome = Outcome(event=failure(exc), key=command.message_id)
                final = CommandStatus.FAILED
            async with await closing() as uow:
                if not await uow.claim(command.message_id):
                    return
                await uow.commands.finish(command.message_id, final, outcome.resource_id, utcnow())
                await uow.publish(outcome.event, key=outcome.key)
                for extra, key in outcome.extra:
                    await uow.publish(extra, key=key)
                # After the outcome's events: what a local write publishes follows them.
                for write in outcome.local:
                    await write(uow)
        log.info(f"{self._service}.command.done", outcome=outcome.event.type, resource_id=outcome.resource_id)

    @contextlib.asynccontextmanager
    async def _owned(self, message_id: str) -> AsyncIterator[tuple[Owner, Callable[[], Awaitable[U]]]]:
        """(the owner, how to open step 3's unit of work) for the block."""
        fencing = self._fencing
        if fencing is None:

            async def plain() -> U:
                return self._uow()

            yield _Unowned(), plain
            return
        async with fencing.acquire(message_id) as ownership:

            async def owned() -> U:
                return fencing.scope(await ownership.sessionmaker())

            yield ownership, owned
