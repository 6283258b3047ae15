"""Child-process supervision for the dev stack and end-to-end tests.

Every child runs in its own session/process group (so a signal reaches its grandchildren too),
gets ``PR_SET_PDEATHSIG`` on Linux (so a SIGKILLed parent leaves nothing behind), and has its
merged stdout/stderr copied line by line into our stdout with a ``[name]`` prefix.

All children are spawned from one long-lived daemon thread: the kernel delivers the parent-death
signal when the *thread* that forked the child exits, so spawning from a short-lived worker thread
(e.g. ``asyncio.to_thread``) would otherwise kill the child when that thread goes away.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import itertools
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

__all__ = [
    "ManagedProcess",
    "ProcessExitedError",
    "RunAs",
    "Supervisor",
    "install_signal_handlers",
    "live_processes",
    "run_foreground",
    "spawn",
    "terminate_all",
    "wait_for_http",
]

_PR_SET_PDEATHSIG = 1
_COLOURS = ["36", "35", "33", "32", "34", "96", "95", "93", "92", "94"]
_colour_cycle = itertools.cycle(_COLOURS)
_output_lock = threading.Lock()


class ProcessExitedError(RuntimeError):
    """A child exited while we were waiting for it to become ready."""


@dataclass(frozen=True)
class RunAs:
    """Drop privileges to this uid/gid in the child before exec."""

    uid: int
    gid: int


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _make_preexec(pdeathsig: int, run_as: RunAs | None) -> Callable[[], None]:
    parent_pid = os.getpid()
    libc = _LIBC

    def preexec() -> None:  # runs in the forked child, before exec
        if run_as is not None:
            os.setgroups([])
            os.setgid(run_as.gid)
            os.setuid(run_as.uid)
        # After setuid: a credential change clears the parent-death signal.
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, pdeathsig, 0, 0, 0)
        if os.getppid() != parent_pid:  # parent died between fork and prctl
            os._exit(1)

    return preexec


# --------------------------------------------------------------------------- spawner thread

_SpawnJob = tuple[Callable[[], subprocess.Popen[bytes]], "Future[subprocess.Popen[bytes]]"]
_spawn_queue: queue.SimpleQueue[_SpawnJob] = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _spawner_loop() -> None:
    while True:
        fn, fut = _spawn_queue.get()
        if not fut.set_running_or_notify_cancel():
            continue
        try:
            fut.set_result(fn())
        except BaseException as exc:
            fut.set_exception(exc)


def _popen_on_spawner(fn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _spawner
    with _spawner_lock:
        if _spawner is None or not _spawner.is_alive():
            _spawner = threading.Thread(target=_spawner_loop, name="devinfra-spawner", daemon=True)
            _spawner.start()
    fut: Future[subprocess.Popen[bytes]] = Future()
    _spawn_queue.put((fn, fut))
    return fut.result()


# --------------------------------------------------------------------------- watchdog
# PR_SET_PDEATHSIG only reaches the direct child. The watchdog (started once, in its own session)
# holds the read end of a pipe from us; when it sees EOF (we died, even by SIGKILL) it stops every
# process group we registered: stop signal, then SIGKILL after 2 s.

_WATCHDOG_SRC = r"""
import os, select, signal, sys, time
parent = os.getppid()
groups = {}
buf = b""
def alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except OSError:
        return False
while True:
    ready, _, _ = select.select([0], [], [], 0.5)
    if not ready:
        if os.getppid() != parent:
            break
        continue
    chunk = os.read(0, 4096)
    if not chunk:
        break
    buf += chunk
    while b"\n" in buf:
        line, buf = buf.split(b"\n", 1)
        parts = line.split()
        if len(parts) == 2 and parts[0] == b"-":
            groups.pop(int(parts[1]), None)
        elif len(parts) == 3 and parts[0] == b"+":
            groups[int(parts[1])] = int(parts[2])
for pgid, sig in groups.items():
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
deadline = time.monotonic() + 2.0
while time.monotonic() < deadline and any(alive(g) for g in groups):
    time.sleep(0.05)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""

_watchdog: subprocess.Popen[bytes] | None = None
_watchdog_lock = threading.Lock()


def _watchdog_send(line: str) -> None:
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None or _watchdog.poll() is not None:
            _watchdog = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [sys.executable, "-c", _WATCHDOG_SRC],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        assert _watchdog.stdin is not None
        try:
            _watchdog.stdin.write(line.encode() + b"\n")
            _watchdog.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass


def _watch_group(pgid: int, sig: int) -> None:
    _watchdog_send(f"+ {pgid} {sig}")


def _unwatch_group(pgid: int) -> None:
    _watchdog_send(f"- {pgid}")


# --------------------------------------------------------------------------- process groups


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie process is in process group ``pgid``."""
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid pgrp ...  -- comm may contain spaces/parens
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(eq=False)
class ManagedProcess:
    """One supervised child (and its process group)."""

    name: str
    argv: list[str]
    env: dict[str, str] | None
    cwd: str | None
    stop_signal: int
    tier: int
    run_as: RunAs | None
    pdeathsig: int
    output: bool
    log_file: str | None = None
    popen: subprocess.Popen[bytes] = field(init=False, repr=False)
    _tail: collections.deque[str] = field(init=False, repr=False)
    _pump: threading.Thread | None = field(init=False, default=None, repr=False)

    def _start(self) -> None:
        self._tail = collections.deque(maxlen=200)
        colour = next(_colour_cycle)
        preexec = _make_preexec(self.pdeathsig, self.run_as)
        self.popen = _popen_on_spawner(
            lambda: subprocess.Popen(  # noqa: S603 - argv is built by us, never a shell
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
            )
        )
        _watch_group(self.pgid, self.stop_signal)
        assert self.popen.stdout is not None
        self._pump = threading.Thread(
            target=self._pump_output,
            args=(self.popen.stdout, colour),
            name=f"devinfra-out-{self.name}",
            daemon=True,
        )
        self._pump.start()
        with _live_lock:
            _LIVE.append(self)

    def _pump_output(self, stream: IO[bytes], colour: str) -> None:
        prefix = f"[{self.name}]"
        # Every line, appended across restarts, when asked (tests search logs for leaked secrets).
        sink = open(self.log_file, "a", encoding="utf-8") if self.log_file else None  # noqa: SIM115
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            self._tail.append(line)
            if sink is not None:
                sink.write(line + "\n")
                sink.flush()
            if not self.output:
                continue
            with _output_lock:
                out = sys.stdout
                try:
                    shown = f"\033[{colour}m{prefix}\033[0m" if out.isatty() else prefix
                    out.write(f"{shown} {line}\n")
                    out.flush()
                except (ValueError, OSError):  # stdout closed/replaced (e.g. by pytest capture)
                    pass
        stream.close()
        if sink is not None:
            sink.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        return self.popen.pid  # session leader: pgid == pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        return self.running() or _group_alive(self.pgid)

    def tail(self, n: int = 40) -> list[str]:
        return list(self._tail)[-n:]

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the child's whole process group."""
        _killpg(self.pgid, sig)

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop signal to the group, then SIGKILL whatever is left after ``timeout``."""
        terminate_all(timeout, [self])
        return self.popen.poll()


_LIVE: list[ManagedProcess] = []
_live_lock = threading.Lock()


def live_processes() -> list[ManagedProcess]:
    with _live_lock:
        return [p for p in _LIVE if p.group_alive()]


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    unset_env: Iterable[str] = (),
    cwd: str | os.PathLike[str] | None = None,
    stop_signal: int = signal.SIGTERM,
    pdeathsig: int = signal.SIGKILL,
    tier: int = 1,
    run_as: RunAs | None = None,
    output: bool = True,
    log_file: str | None = None,
) -> ManagedProcess:
    """Start ``argv`` in its own process group.

    ``env`` overlays our environment unless ``inherit_env`` is false; ``unset_env`` names are
    removed. Higher ``tier`` processes are stopped first by ``terminate_all``."""
    full_env: dict[str, str] | None
    unset = set(unset_env)
    full_env = dict(env or {})
    if inherit_env:
        full_env = {**os.environ, **full_env} if full_env or unset else None
    if full_env is not None:
        for key in unset:
            full_env.pop(key, None)
    proc = ManagedProcess(
        name=name,
        argv=[str(a) for a in argv],
        env=full_env,
        cwd=str(cwd) if cwd is not None else None,
        stop_signal=stop_signal,
        tier=tier,
        run_as=run_as,
        pdeathsig=pdeathsig,
        output=output,
        log_file=log_file,
    )
    proc._start()
    return proc


def terminate_all(timeout: float = 5.0, procs: Iterable[ManagedProcess] | None = None) -> None:
    """Stop processes tier by tier (highest first): stop signal to each group, SIGKILL after ``timeout``.

    With ``procs`` None this stops every process spawned by this module that is still alive.
    """
    with _live_lock:
        targets = list(_LIVE if procs is None else procs)
    by_tier: dict[int, list[ManagedProcess]] = collections.defaultdict(list)
    for p in targets:
        by_tier[p.tier].append(p)
    for tier in sorted(by_tier, reverse=True):
        group = [p for p in by_tier[tier] if p.group_alive()]
        for p in group:
            p.signal(p.stop_signal)
        deadline = time.monotonic() + timeout
        while group and time.monotonic() < deadline:
            group = [p for p in group if p.group_alive()]
            if group:
                time.sleep(0.02)
        for p in group:
            p.signal(signal.SIGKILL)
        kill_deadline = time.monotonic() + 5.0
        while group and time.monotonic() < kill_deadline:
            group = [p for p in group if p.group_alive()]
            if group:
                time.sleep(0.02)
    for p in targets:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.popen.wait(1.0)
        if not p.group_alive():
            _unwatch_group(p.pgid)
        if p._pump is not None:
            p._pump.join(1.0)
    with _live_lock:
        _LIVE[:] = [p for p in _LIVE if p.group_alive()]


def _kill_everything_now() -> None:
    with _live_lock:
        targets = list(_LIVE)
    for p in targets:
        p.signal(signal.SIGKILL)


atexit.register(terminate_all, 3.0)


# --------------------------------------------------------------------------- supervisor


class Supervisor:
    """Named children: start, kill, restart, stop them all."""

    def __init__(self) -> None:
        self._procs: dict[str, ManagedProcess] = {}
        self._expected_exit: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self._procs

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate_all()

    @property
    def names(self) -> list[str]:
        return list(self._procs)

    def get(self, name: str) -> ManagedProcess:
        return self._procs[name]

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stop_signal: int = signal.SIGTERM,
        tier: int = 1,
        run_as: RunAs | None = None,
        output: bool = True,
        log_file: str | None = None,
    ) -> ManagedProcess:
        old = self._procs.get(name)
        if old is not None and old.group_alive():
            raise RuntimeError(f"{name} is already running (pid {old.pid})")
        proc = spawn(
            name,
            argv,
            env=env,
            cwd=cwd,
            stop_signal=stop_signal,
            tier=tier,
            run_as=run_as,
            output=output,
            log_file=log_file,
        )
        self._procs[name] = proc
        self._expected_exit.discard(name)
        return proc

    def adopt(self, proc: ManagedProcess) -> None:
        """Track a process spawned elsewhere (e.g. the embedded broker) under its name."""
        self._procs[proc.name] = proc

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal ``name``'s process group. Its exit is then treated as expected."""
        self._expected_exit.add(name)
        self._procs[name].signal(sig)

    def pause(self, name: str) -> None:
        """SIGSTOP ``name``'s process group, like an OS or a GC stall freezing a worker: it keeps its
        sockets open but answers nothing until :meth:`resume`."""
        self._procs[name].signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        """SIGCONT ``name``'s process group: it carries on where it stopped."""
        self._procs[name].signal(signal.SIGCONT)

    def stop(self, name: str, timeout: float = 5.0) -> int | None:
        self._expected_exit.add(name)
        self._procs[name].signal(signal.SIGCONT)  # a paused child would ignore the stop signal
        return self._procs[name].stop(timeout)

    def restart(self, name: str, timeout: float = 5.0) -> ManagedProcess:
        """Stop ``name`` (if still running) and start it again with the same command and env."""
        old = self._procs[name]
        self.stop(name, timeout)
        proc = spawn(
            old.name,
            old.argv,
            env=old.env,
            inherit_env=old.env is None,
            cwd=old.cwd,
            stop_signal=old.stop_signal,
            tier=old.tier,
            run_as=old.run_as,
            output=old.output,
            log_file=old.log_file,
        )
        self._procs[name] = proc
        self._expected_exit.discard(name)
        return proc

    def unexpected_exits(self) -> list[tuple[str, int]]:
        """Children that exited without us asking them to."""
        return [
            (name, rc)
            for name, p in self._procs.items()
            if name not in self._expected_exit and (rc := p.returncode) is not None
        ]

    def terminate_all(self, timeout: float = 5.0) -> None:
        self._expected_exit.update(self._procs)
        for proc in self._procs.values():
            proc.signal(signal.SIGCONT)  # a paused child would ignore the stop signal
        terminate_all(timeout, list(self._procs.values()))


def run_foreground(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
) -> int:
    """Run a child to completion with prefixed output; returns its exit code."""
    proc = spawn(name, argv, env=env, cwd=cwd)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.stop(2.0)
        raise
    finally:
        if proc._pump is not None:
            proc._pump.join(2.0)


def wait_for_http(
    url: str,
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    process: ManagedProcess | None = None,
) -> None:
    """Poll ``GET url`` until it answers 200. Raises TimeoutError at the deadline, or
    ProcessExitedError as soon as ``process`` (if given) has exited."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    deadline = time.monotonic() + timeout
    last: str = "no answer"
    while True:
        if process is not None and process.returncode is not None:
            tail = "\n".join(process.tail(30))
            raise ProcessExitedError(
                f"{process.name} exited with code {process.returncode} before {url} was ready:\n{tail}"
            )
        try:
            with opener.open(url, timeout=max(0.2, min(2.0, deadline - time.monotonic()))) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            # The body says which check failed (a readiness 503 names them): keep it for the error.
            body = exc.read(300).decode("utf-8", "replace").strip()
            last = f"HTTP {exc.code} {body}".strip()
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} not ready after {timeout:.0f}s (last: {last})")
        time.sleep(interval)


class _ShutdownRequested(KeyboardInterrupt):
    """Raised in the main thread when SIGINT/SIGTERM arrives."""


def install_signal_handlers() -> None:
    """SIGINT/SIGTERM raise KeyboardInterrupt in the main thread (callers stop everything in a
    ``finally``); a second signal SIGKILLs every child group immediately and exits."""
    state = {"count": 0}

    def handler(signum: int, frame: FrameType | None) -> None:
        state["count"] += 1
        if state["count"] > 1:
            _kill_everything_now()
            os._exit(128 + signum)
        raise _ShutdownRequested(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
