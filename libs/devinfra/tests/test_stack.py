from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from devinfra.procs import wait_for_http
from devinfra.stack import RESTART_RESET_S, SERVICES, Restarter, Stack, StackError, runnable

from .helpers import pid_gone, private_wheel, wait_until


def test_registry_is_consistent() -> None:
    names = [s.name for s in SERVICES]
    assert len(names) == len(set(names))
    assert "gateway" in names
    assert not runnable("no_such_module_devinfra")
    assert runnable("devinfra.stack")


def test_stack_with_no_services(kafka_bootstrap_servers: str, database_url: str) -> None:
    with Stack({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers, "DATABASE_URL": database_url}) as stack:
        assert stack.start(services=[]) == []
        env = stack.env
        assert env["DATABASE_URL"] == database_url
        assert env["SWITCHBOARD_SECRET_KEY"]
        assert env["SWITCHBOARD_API_KEYS"]
        assert stack.url("gateway").startswith("http://127.0.0.1:")
    with pytest.raises(ValueError, match="unknown"):
        Stack().start(services=["nope"])


@pytest.mark.skipif(not runnable("elevenlabs_sim"), reason="simulator not written yet")
def test_stack_runs_kills_and_restarts_the_simulator() -> None:
    with Stack(output=False, ready_timeout=30) as stack:
        assert stack.start(services=["elevenlabs-sim"]) == ["elevenlabs-sim"]
        assert stack.env["ELEVENLABS_BASE_URL"] == stack.url("elevenlabs-sim")
        assert stack.env["ELEVENLABS_API_KEY"] == "sim-key"
        first = stack.process("elevenlabs-sim").pid
        stack.kill("elevenlabs-sim", signal.SIGKILL)
        wait_until(lambda: pid_gone(first), 5, "sim killed")
        stack.check()  # an asked-for exit is not "unexpected"
        stack.restart("elevenlabs-sim")
        second = stack.process("elevenlabs-sim").pid
        assert second != first
        wait_for_http(stack.url("elevenlabs-sim") + "/_sim/state", timeout=5)
    assert pid_gone(second)


@pytest.mark.skipif(not runnable("elevenlabs_sim"), reason="simulator not written yet")
def test_make_up_starts_a_crashed_service_again_backing_off_while_it_keeps_crashing() -> None:
    # `make up` used to stop every service when one crashed: a campaign in flight then lost the
    # in-memory broker's messages with it. The clock is passed in; the processes are real.
    sim = "elevenlabs-sim"
    with Stack(output=False, ready_timeout=30) as stack:
        stack.start(services=[sim])

        def crash() -> int:
            pid = stack.process(sim).pid
            os.kill(pid, signal.SIGKILL)  # not through the stack: an unexpected exit
            wait_until(lambda: stack.process(sim).returncode is not None, 5, "sim dead")
            return pid

        crash()
        with pytest.raises(StackError, match="exited unexpectedly"):
            stack.check()  # without restarts, as the test harnesses want: an error
        restarter = Restarter(stack)
        for crashed_at, delay in [(0.0, 1.0), (1.0, 2.0), (3.0, 4.0), (7.0 + RESTART_RESET_S, 1.0)]:
            if crashed_at:
                crash()
            assert restarter.poll(crashed_at) == []
            assert restarter.poll(crashed_at + delay - 0.01) == []
            assert restarter.poll(crashed_at + delay) == [sim], (crashed_at, delay)
            wait_for_http(stack.url(sim) + "/_sim/state", timeout=10)
        assert restarter.poll(100.0) == [] and stack.supervisor.unexpected_exits() == []


@pytest.mark.parametrize("private", [False, True], ids=["shared-folder", "private-folder"])
def test_make_up_starts_infra_and_ctrl_c_leaves_nothing(private: bool) -> None:
    """`python -m devinfra.stack up` with embedded Tansu + Postgres and no services; SIGINT stops all.

    ``private``: the clone sits in a 0700 folder (root's home, issue 11), its wheel and its
    .devstack included, so an unprivileged server user can reach neither.
    """
    top = Path(tempfile.mkdtemp(prefix="sb-devstack-"))
    if not private:
        top.chmod(0o755)
    state = top / "clone" / ".devstack"
    provided = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "SWITCHBOARD_SECRET_KEY", "SWITCHBOARD_API_KEYS")
    env = {k: v for k, v in os.environ.items() if k not in provided}
    env.update(DEVSTACK_DIR=str(state), DEVSTACK_SERVICES="", ELEVENLABS_API_KEY="real-key-not-used")
    if private:
        site = top / "clone" / ".venv" / "site-packages"
        private_wheel(site)
        env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.Popen(
        [sys.executable, "-m", "devinfra.stack", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    data = state / "pgdata"
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                break
        out = "".join(lines)
        assert "Switchboard is up" in out, out
        assert "API key: " in out
        key = (state / "api-key").read_text().strip()
        assert key in out
        assert (state / "secret.key").stat().st_mode & 0o777 == 0o600
        assert (data / "PG_VERSION").exists()
        pids = _child_pids(proc.pid)
        assert len(pids) >= 2, pids  # tansu + postgres (+ watchdog)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(10)
        assert rc == 0, "".join(lines) + proc.stdout.read()
        for pid in pids:
            wait_until(lambda pid=pid: pid_gone(pid), 5, f"pid {pid} gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        if data.is_symlink():  # relocated where the server user can reach it
            shutil.rmtree(data.resolve(), ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


def _child_pids(ppid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == ppid:
                out.append(int(entry.name))
    return out
