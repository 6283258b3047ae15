from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest

from devinfra.postgres import (
    asyncpg_dsn,
    create_database,
    database_exists_async,
    drop_database,
    server_answers,
    start_embedded_postgres,
    with_database,
)

from .helpers import pid_gone, private_wheel, proc_uid

LOCAL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def test_url_helpers() -> None:
    url = "postgresql+asyncpg://u:p@127.0.0.1:5432/db?ssl=disable"
    assert asyncpg_dsn(url) == "postgresql://u:p@127.0.0.1:5432/db?ssl=disable"
    assert with_database(url, "x") == "postgresql+asyncpg://u:p@127.0.0.1:5432/x?ssl=disable"
    assert asyncpg_dsn("postgresql://h/db") == "postgresql://h/db"


async def _query(url: str, sql: str) -> object:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def test_create_and_drop_database_on_local_server() -> None:
    for url in (LOCAL, asyncpg_dsn(LOCAL)):
        if not server_answers(url):
            pytest.skip("no PostgreSQL on 127.0.0.1:5432")
        name = f"sb_devinfra_{uuid.uuid4().hex[:8]}"
        db_url = create_database(url, name)
        assert db_url.endswith(f"/{name}")
        assert db_url.split("://")[0] == url.split("://")[0]
        # a lingering connection must not block the drop
        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(asyncpg.connect(asyncpg_dsn(db_url)))
        try:
            assert loop.run_until_complete(conn.fetchval("SELECT current_database()")) == name
            with pytest.raises(FileExistsError):
                create_database(url, name)
            create_database(url, name, exist_ok=True)
            drop_database(url, name)
        finally:
            loop.run_until_complete(conn.close(timeout=1))
            loop.close()
        assert not asyncio.run(database_exists_async(url, name))
        drop_database(url, name)  # no error when absent


def test_database_url_fixture(database_url: str) -> None:
    assert asyncio.run(_query(database_url, "SELECT current_database()")).startswith("sb_test_")


def test_embedded_postgres_runs_unprivileged_and_restarts_warm() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="sb-pg-test-"))
    tmp.chmod(0o755)
    try:
        data = tmp / "pgdata"
        with start_embedded_postgres(data, fast=True) as pg:
            assert pg.url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
            assert asyncio.run(_query(pg.url, "SELECT 41 + 1")) == 42
            if os.geteuid() == 0:
                assert proc_uid(pg.pid) != 0
            create_database(pg.url, "switchboard")
            first_pid = pg.pid
        assert pid_gone(first_pid)
        # warm start: same data dir, data survived
        with start_embedded_postgres(data, fast=True) as pg2:
            current = asyncio.run(_query(pg2.url_for("switchboard"), "SELECT current_database()"))
            assert current == "switchboard"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_embedded_postgres_starts_from_a_folder_only_its_owner_can_enter() -> None:
    """A clone in root's home (issue 11): the wheel in its .venv and the data in its .devstack sit
    under a 0700 folder the unprivileged server user cannot enter; the server starts all the same."""
    private = Path(tempfile.mkdtemp(prefix="sb-pg-private-"))
    assert private.stat().st_mode & 0o777 == 0o700
    install = private_wheel(private / "clone" / ".venv" / "site-packages")
    data = private / "clone" / ".devstack" / "pgdata"
    real_data: Path | None = None
    try:
        with start_embedded_postgres(data, fast=True, install_dir=install) as pg:
            real_data = pg.data_dir
            assert asyncio.run(_query(pg.url, "SELECT 41 + 1")) == 42
            if os.geteuid() == 0:
                assert proc_uid(pg.pid) != 0
                exe = Path(f"/proc/{pg.pid}/exe").resolve()
                assert private not in exe.parents, exe  # runs from a copy it can reach
                assert private not in real_data.parents and data.resolve() == real_data
            create_database(pg.url, "switchboard")
            first_pid = pg.pid
        assert pid_gone(first_pid)
        with start_embedded_postgres(data, fast=True, install_dir=install) as pg2:
            assert pg2.data_dir == real_data
            current = asyncio.run(_query(pg2.url_for("switchboard"), "SELECT current_database()"))
            assert current == "switchboard"
    finally:
        if real_data is not None:
            shutil.rmtree(real_data, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
