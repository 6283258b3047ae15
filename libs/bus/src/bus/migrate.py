"""Alembic, the same way in every service: each service migrates its own schema.

A service keeps `migrations/` (env.py + versions/) inside its package; `env.py` calls
`run_env(metadata)`; `python -m <service> migrate` and the service's start-up call `upgrade()`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(migrations_dir: Path, database_url: str) -> None:
    """Bring the schema to head. Safe to run concurrently from several replicas (advisory lock)."""
    command.upgrade(alembic_config(migrations_dir, database_url), "head")


def run_env(metadata: MetaData) -> None:
    """Body of a service's `env.py` (online mode only: we always have a database)."""
    schema = metadata.schema
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def do_run(connection: Connection) -> None:
        # Serialise concurrent upgrades of the same schema (several replicas starting at once).
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"alembic:{schema}"})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool, hide_parameters=True)
        async with engine.begin() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run())
