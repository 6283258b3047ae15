"""The upstream-command ledger's table became `upstream_commands` (bus.ledger) in provisioning and
telephony: the migration keeps every row, so a command started before the upgrade is recovered
after it (never acted on upstream as if new), and the downgrade gives the rows back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

import provisioning.bootstrap
import telephony.bootstrap
from bus.ledger import CommandLedger, CommandStatus, make_ledger_table
from bus.migrate import alembic_config
from devinfra.postgres import create_database, drop_database

pytestmark = pytest.mark.integration

# the service's schema, its migrations, its revision before the rename (env.py runs its own event
# loop, hence alembic in a thread)
SERVICES = [
    ("provisioning", provisioning.bootstrap.MIGRATIONS_DIR, "0003"),
    ("telephony", telephony.bootstrap.MIGRATIONS_DIR, "0002"),
]


@pytest.fixture
def empty_database(postgres_server_url: str) -> Iterator[str]:
    name = f"sb_test_ledger_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_server_url, name)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, name)


@pytest.mark.parametrize(("schema", "migrations", "before"), SERVICES, ids=[s[0] for s in SERVICES])
async def test_the_rename_keeps_every_started_and_finished_command(
    empty_database: str, schema: str, migrations: Path, before: str
) -> None:
    config = alembic_config(migrations, empty_database)
    await asyncio.to_thread(command.upgrade, config, before)
    engine = create_async_engine(empty_database)
    started_at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    f"INSERT INTO {schema}.attempts (message_id, command_type, status, resource_id, started_at) "  # noqa: S608
                    "VALUES ('m-started', 'x.create', 'started', NULL, :at), "
                    "('m-done', 'x.create', 'succeeded', 'res-1', :at)"
                ),
                {"at": started_at},
            )
        await asyncio.to_thread(command.upgrade, config, "head")
        ledger_table = make_ledger_table(MetaData(schema=schema))
        async with async_sessionmaker(engine)() as session, session.begin():
            ledger = CommandLedger(session, ledger_table)
            again, created = await ledger.start("m-started", "x.create")  # a redelivery after the upgrade
            done = await ledger.get("m-done")
        assert not created and (again.status, again.started_at) == (CommandStatus.STARTED, started_at)
        assert done is not None and (done.status, done.resource_id) == (CommandStatus.SUCCEEDED, "res-1")

        await asyncio.to_thread(command.downgrade, config, before)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(f"SELECT message_id, status FROM {schema}.attempts ORDER BY message_id")  # noqa: S608
            )
            assert rows.all() == [("m-done", "succeeded"), ("m-started", "started")]
    finally:
        await engine.dispose()
