"""Shared by the benchmarks: the stack as real processes on an embedded broker and a fresh database."""

from __future__ import annotations

import gc
import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from devinfra.broker import TANSU_CLIENT_ENV, start_tansu
from devinfra.postgres import create_database, drop_database
from devinfra.stack import Stack

SERVER = os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
API_KEY = "bench"


@contextmanager
def running_stack(
    services: list[str], extra_env: dict[str, str] | None = None, log_dir: Path | None = None
) -> Iterator[Stack]:
    db = f"sb_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(SERVER, db)
    try:
        with start_tansu() as broker:
            env = {
                "DATABASE_URL": url,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "SWITCHBOARD_API_KEYS": API_KEY,
                "LOG_LEVEL": "WARNING",
                **TANSU_CLIENT_ENV,
                **(extra_env or {}),
            }
            with Stack(env, output=False, log_dir=log_dir) as stack:
                stack.start(services)
                yield stack
    finally:
        drop_database(SERVER, db)


def pct(samples: list[float], q: float) -> float:
    """q-th percentile in milliseconds (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def row(label: str, samples: list[float]) -> str:
    return f"{label:34}{pct(samples, 50):>10.1f}{pct(samples, 99):>10.1f}{statistics.mean(samples) * 1000:>10.1f}"


HEADER = f"{'':34}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}"


@contextmanager
def quiet_collector() -> Iterator[None]:
    """The load generator's own garbage collector must not be what a benchmark measures.

    With thousands of requests in flight its full collections paused the generator for
    50-100 ms, then released a burst of requests at once: a tail that belonged to neither the
    service nor the store. Start-up objects are frozen and collection is off while measuring.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (and its reaped children), from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    ticks = sum(int(x) for x in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def broker_pid() -> int | None:
    """The embedded broker this benchmark started (a Tansu child process), if any."""
    for pid in children(os.getpid()):  # start_tansu spawns it directly
        try:
            if b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]:
                return pid
        except OSError:
            continue
    return None


def postgres_seconds() -> float:
    """CPU seconds of every PostgreSQL process now running (server, backends, workers), from /proc:
    the shared server's, so other databases' work counts too when the machine is not idle.
    A backend that exited takes its CPU with it: read before the services disconnect."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip().startswith("postgres"):
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def status_kib(pid: int, field: str) -> int:
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS)."""
    return status_kib(pid, "VmRSS") / 1024


def machine_busy_seconds() -> float:
    """CPU seconds spent on anything but idle/iowait, all cores together, from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x)
        for x in open("/proc/stat").readline().split()[1:9]  # noqa: SIM115
    )
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def numbers(count: int) -> list[str]:
    """Distinct valid US numbers (+1 415 ...) ending in 1, which the simulator answers and completes."""
    salt = uuid.uuid4().int % 7
    return [f"+1415{200 + salt * 100 + i // 1000:03d}{i % 1000:03d}1" for i in range(count)]


def database_work(base_url: str) -> tuple[float, float]:
    """(statements, transactions) a service has asked of PostgreSQL so far, from its /metrics
    (`switchboard_db_statements_total`, `switchboard_db_transactions_total`); (0, 0) for a process
    without them (the simulator)."""
    answer = httpx.get(f"{base_url}/metrics", timeout=10)
    if answer.status_code != 200:
        return (0.0, 0.0)
    statements = transactions = 0.0
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "switchboard_db_statements_total":
                statements += sample.value
            elif sample.name == "switchboard_db_transactions_total":
                transactions += sample.value
    return (statements, transactions)
