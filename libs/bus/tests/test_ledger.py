"""The upstream-command ledger on a real PostgreSQL: a command acts upstream once however often it
is delivered; a delivery that finds it `started` recovers; a `CommandError` becomes the failure
event; with fencing, the outcome commits in the owned transaction."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import pytest
from sqlalchemy import MetaData, Table, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bus import inbox as bus_inbox
from bus import ownership
from bus.db import make_engine, make_sessionmaker
from bus.errors import CommandError
from bus.ledger import (
    CommandLedger,
    CommandRunner,
    CommandStatus,
    Fencing,
    Outcome,
    UpstreamCommand,
    caused_by,
    make_ledger_table,
)
from bus.tables import make_inbox_table
from contracts.base import Event
from contracts.provisioning import DeleteTool, ToolDeleted

pytestmark = pytest.mark.integration


@dataclass
class Db:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    ledger: Table
    inbox: Table
    published: list[tuple[Event, str | None]] = field(default_factory=list)


class Scope:
    """A service's unit of work reduced to what the runner uses: the ledger and the inbox on the
    real database; what it publishes is kept when (and only when) its transaction commits."""

    def __init__(self, db: Db, sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> None:
        self._db = db
        self._sessionmaker = sessionmaker or db.sessionmaker
        self._queued: list[tuple[Event, str | None]] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessionmaker()
        await self.session.begin()
        self.commands = CommandLedger(self.session, self._db.ledger)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                await self.session.commit()
                self._db.published.extend(self._queued)
            else:
                await self.session.rollback()
        finally:
            await self.session.close()

    async def claim(self, message_id: str) -> bool:
        return await bus_inbox.claim(self.session, self._db.inbox, "ledger-test", message_id)

    async def publish(self, event: Event, key: str | None) -> int:
        self._queued.append((event, key))
        return len(self._queued)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    """The ledger and inbox tables in a schema of this test's own."""
    schema = f"ledger_{uuid.uuid4().hex[:8]}"
    metadata = MetaData(schema=schema)
    ledger, inbox = make_ledger_table(metadata), make_inbox_table(metadata)
    engine = make_engine(database_url, pool_size=4)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.run_sync(metadata.create_all)
    try:
        yield Db(engine, make_sessionmaker(engine), ledger, inbox)
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


def _runner(db: Db, *, fenced: bool = False) -> CommandRunner[Scope]:
    fencing = (
        Fencing(
            acquire=lambda key: ownership.acquire(db.engine, f"ledger-test:{key}", lease_s=5.0),
            scope=lambda owned: Scope(db, owned),
        )
        if fenced
        else None
    )
    return CommandRunner(lambda: Scope(db), service="ledger-test", fencing=fencing)


async def _entry(db: Db, message_id: str) -> tuple[str, str | None] | None:
    async with db.sessionmaker() as session:
        entry = await CommandLedger(session, db.ledger).get(message_id)
    return (entry.status, entry.resource_id) if entry else None


@pytest.mark.parametrize("fenced", [False, True])
async def test_a_command_delivered_twice_acts_upstream_once(db: Db, fenced: bool) -> None:
    command = DeleteTool(tool_id="tool-1")
    seen: list[UpstreamCommand] = []

    async def action(upstream: UpstreamCommand) -> Outcome[Scope]:
        seen.append(upstream)
        return Outcome(
            event=caused_by(command, ToolDeleted, tool_id="tool-1"), key="tool-1", resource_id="tool-1"
        )

    runner = _runner(db, fenced=fenced)
    await runner.run(command, action)
    await runner.run(command.model_copy(), action)  # the redelivery

    assert [u.recovering for u in seen] == [False]
    assert await _entry(db, command.message_id) == (CommandStatus.SUCCEEDED, "tool-1")
    [(event, key)] = db.published
    assert (event.type, event.causation_id, key) == ("tool.deleted", command.message_id, "tool-1")


async def test_a_delivery_that_finds_the_command_started_recovers_from_its_first_start(db: Db) -> None:
    command = DeleteTool(tool_id="tool-2")
    async with Scope(db) as scope:  # an earlier delivery crashed after step 1
        first, created = await scope.commands.start(command.message_id, command.type)
    assert created
    seen: list[UpstreamCommand] = []

    async def action(upstream: UpstreamCommand) -> Outcome[Scope]:
        seen.append(upstream)
        return Outcome(event=caused_by(command, ToolDeleted, tool_id="tool-2"), key="tool-2")

    await _runner(db).run(command, action)

    assert [(u.recovering, u.started_at) for u in seen] == [(True, first.started_at)]
    assert await _entry(db, command.message_id) == (CommandStatus.SUCCEEDED, None)


async def test_a_command_error_becomes_the_failure_event_with_the_local_writes_left_out(db: Db) -> None:
    command = DeleteTool(tool_id="tool-3")
    written: list[str] = []

    async def local(_: Scope) -> None:
        written.append("local")

    async def action(upstream: UpstreamCommand) -> Outcome[Scope]:
        raise CommandError(404, "Tool not found: tool-3", "upstream said 404")

    await _runner(db).run(command, action)

    assert await _entry(db, command.message_id) == (CommandStatus.FAILED, None)
    [(event, key)] = db.published
    assert key == command.message_id
    assert event.model_dump(include={"type", "command_type", "status_code", "error", "detail"}) == {
        "type": "command.failed",
        "command_type": "tool.delete",
        "status_code": 404,
        "error": "Tool not found: tool-3",
        "detail": "upstream said 404",
    }
    assert written == []


async def test_an_exception_that_is_no_command_error_leaves_the_command_started_for_a_retry(db: Db) -> None:
    command = DeleteTool(tool_id="tool-4")

    async def action(upstream: UpstreamCommand) -> Outcome[Scope]:
        raise RuntimeError("lookup failed")

    with pytest.raises(RuntimeError):
        await _runner(db).run(command, action)

    assert await _entry(db, command.message_id) == (CommandStatus.STARTED, None)
    assert db.published == []


async def test_a_new_command_is_recorded_in_one_statement_and_a_redelivery_finds_its_row(db: Db) -> None:
    command = DeleteTool(tool_id="tool-5")
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with Scope(db) as scope:
            first, created = await scope.commands.start(command.message_id, command.type)
        assert created and first.status == CommandStatus.STARTED and first.finished_at is None
        assert len(statements) == 1, statements  # the INSERT returned the row
        async with Scope(db) as scope:
            again, created_again = await scope.commands.start(command.message_id, command.type)
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert not created_again
    assert again == first


async def test_claims_reuse_one_statement_per_inbox_and_a_second_claim_is_refused(db: Db) -> None:
    """Every message a service handles alone is claimed: the INSERT is built once per inbox, not
    per message (building it and its cache key cost ~0.1-0.2 ms each time)."""
    built: list[int] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, *args: Any) -> None:
        if ".inbox" in statement and statement.lstrip().startswith("INSERT"):
            built.append(id(context.invoked_statement))

    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with Scope(db) as scope:
            claimed = [await scope.claim(first), await scope.claim(second), await scope.claim(first)]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    assert claimed == [True, True, False]
    assert len(built) == 3 and len(set(built)) == 1, built
