from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devinfra.procs import ProcessExitedError, Supervisor, spawn, terminate_all, wait_for_http

from .helpers import pid_gone, wait_until

CHILD_WITH_GRANDCHILD = ["sh", "-c", "sleep 300 & echo grandchild=$!; wait"]


def _grandchild_pid(proc) -> int:  # type: ignore[no-untyped-def]
    found: list[int] = []

    def seen() -> bool:
        for line in proc.tail():
            if line.startswith("grandchild="):
                found.append(int(line.split("=")[1]))
                return True
        return False

    wait_until(seen, 5, "grandchild pid")
    return found[0]


def test_terminate_all_stops_child_and_grandchild() -> None:
    sup = Supervisor()
    proc = sup.start("fam", CHILD_WITH_GRANDCHILD, output=False)
    grandchild = _grandchild_pid(proc)
    assert not pid_gone(grandchild)
    sup.terminate_all(timeout=5)
    assert pid_gone(proc.pid)
    assert pid_gone(grandchild)


def test_sigterm_ignoring_child_is_killed_after_timeout() -> None:
    script = "trap '' TERM; echo ready; while :; do sleep 0.05; done"
    proc = spawn("stubborn", ["sh", "-c", script], output=False)
    wait_until(lambda: "ready" in proc.tail(), 5, "trap installed")
    terminate_all(timeout=0.3, procs=[proc])
    assert pid_gone(proc.pid)


def test_kill_and_restart() -> None:
    with Supervisor() as sup:
        first = sup.start("sleeper", ["sleep", "300"], output=False, env={"X_DEVINFRA": "1"})
        sup.kill("sleeper", signal.SIGKILL)
        wait_until(lambda: first.returncode is not None, 5, "sleeper killed")
        assert sup.unexpected_exits() == []
        second = sup.restart("sleeper")
        assert second.pid != first.pid
        assert second.running()
        assert second.env is not None
        assert second.env["X_DEVINFRA"] == "1"
    assert pid_gone(second.pid)


def _state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2]


def test_pause_freezes_resume_thaws_and_a_paused_child_still_stops_gracefully() -> None:
    with Supervisor() as sup:
        proc = sup.start("frozen", ["sleep", "300"], output=False)
        sup.pause("frozen")
        wait_until(lambda: _state(proc.pid) == "T", 5, "stopped")
        assert proc.running() and sup.unexpected_exits() == []
        sup.resume("frozen")
        wait_until(lambda: _state(proc.pid) == "S", 5, "running again")
        sup.pause("frozen")
        wait_until(lambda: _state(proc.pid) == "T", 5, "stopped again")
        assert sup.stop("frozen", timeout=5) == -signal.SIGTERM  # not left to the SIGKILL fallback


def test_unexpected_exit_is_reported() -> None:
    with Supervisor() as sup:
        proc = sup.start("quitter", ["sh", "-c", "exit 3"], output=False)
        wait_until(lambda: proc.returncode is not None, 5, "exit")
        assert sup.unexpected_exits() == [("quitter", 3)]


def test_output_is_prefixed(capfd) -> None:  # type: ignore[no-untyped-def]
    proc = spawn("echoer", ["sh", "-c", "echo hello; echo oops >&2"])
    proc.wait(5)
    proc.stop(1)
    out = capfd.readouterr().out
    assert "[echoer] hello" in out
    assert "[echoer] oops" in out


def test_wait_for_http_reports_dead_process() -> None:
    proc = spawn("dead", ["sh", "-c", "echo bye; exit 7"], output=False)
    with pytest.raises(ProcessExitedError, match="exited with code 7"):
        wait_for_http("http://127.0.0.1:9/", timeout=10, process=proc)


_PARENT = textwrap.dedent(
    """
    import sys, time
    from devinfra.procs import install_signal_handlers, spawn, terminate_all
    install_signal_handlers()
    p = spawn("fam", ["sh", "-c", "sleep 300 & echo grandchild=$!; wait"], output=False)
    while not any(l.startswith("grandchild=") for l in p.tail()):
        time.sleep(0.01)
    gc = [l for l in p.tail() if l.startswith("grandchild=")][0].split("=")[1]
    print(p.pid, gc, flush=True)
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        terminate_all(3)
    """
)


def _start_parent() -> tuple[subprocess.Popen[str], int, int]:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child, grandchild = (int(x) for x in parent.stdout.readline().split())
    return parent, child, grandchild


def test_sigkilled_parent_leaves_nothing() -> None:
    parent, child, grandchild = _start_parent()
    parent.kill()
    parent.wait(5)
    wait_until(lambda: pid_gone(child), 5, "child gone after parent SIGKILL (pdeathsig)")
    wait_until(lambda: pid_gone(grandchild), 5, "grandchild gone after parent SIGKILL (watchdog)")


def test_sigterm_on_parent_stops_everything() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        parent, child, grandchild = _start_parent()
        parent.send_signal(sig)
        parent.wait(8)
        assert pid_gone(child)
        assert pid_gone(grandchild)
