"""Sandbox mode works out of the box (issue 11): `make up` with no ElevenLabs key, then the README's
own "Try it" commands, run as written. The call and the campaign must finish within seconds, which
only a registered post-call webhook makes happen: without it they stay in progress until
reconciliation, TELEPHONY_RECONCILE_AFTER_S (600 s) later."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devinfra.broker import free_port
from devinfra.postgres import create_database, drop_database
from devinfra.stack import SERVICES
from tests.e2e.conftest import poll

README = Path(__file__).parents[2] / "README.md"
READY = "Ctrl-C stops everything"
FINISHED = ("completed", "failed", "busy", "no_answer", "voicemail", "cancelled")
RECEIVER = "127.0.0.1:9000"  # the README's webhook receiver


def readme_blocks(after: str) -> list[str]:
    """The ```bash blocks of the README that follow the line starting with ``after``."""
    text = README.read_text()
    section = text[text.index(after) :]
    section = section[: section.index("\n## ")]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)


class MakeUp:
    """`python -m devinfra.stack up` (what `make up` runs) in ``home``; its output kept and drained."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devinfra.stack", "up"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if READY in line:
                self.ready.set()
        self.ready.set()  # exited: stop waiting

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="module")
def make_up(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    postgres_server_url: str,
) -> Iterator[tuple[MakeUp, dict[str, int], Path]]:
    home = tmp_path_factory.mktemp("newcomer")
    database = f"sb_test_sandbox_{uuid.uuid4().hex[:12]}"
    ports = {svc.port_env: free_port() for svc in SERVICES}  # never the defaults a real `make up` holds
    unset = ("ELEVENLABS_API_KEY", "ELEVENLABS_BASE_URL", "SWITCHBOARD_API_KEYS", "SWITCHBOARD_SECRET_KEY")
    env = {k: v for k, v in os.environ.items() if k not in unset and not k.startswith("DEVSTACK_")}
    env.update(
        DEVSTACK_DIR=str(home / ".devstack"),
        # The session's broker and database server instead of embedded ones (their own tests cover
        # those); everything else as a newcomer's `make up` has it, reconciliation delay included.
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
        KAFKA_TOPIC_PREFIX=f"t{uuid.uuid4().hex[:8]}.sandbox.",
        DATABASE_URL=create_database(postgres_server_url, database),
        DEVSTACK_READY_TIMEOUT="300",  # per service: a shared machine can be slow to migrate
        # What the README's webhook example starts the stack with (its receiver listens there).
        OUTBOUND_ALLOW_HOSTS=RECEIVER,
        **kafka_client_env,
        **{name: str(port) for name, port in ports.items()},
    )
    up = MakeUp(home, env)
    try:
        up.ready.wait(900)
        assert up.proc.poll() is None and READY in up.output, up.output[-5000:]
        yield up, ports, home
    finally:
        up.stop()
        (home / "make-up.log").write_text(up.output)  # for a failure's post-mortem
        drop_database(postgres_server_url, database)


@pytest.mark.timeout(1500)  # the whole stack starts inside it; a shared machine can be slow
def test_the_readme_sandbox_example_finishes_its_call_and_campaign(
    make_up: tuple[MakeUp, dict[str, int], Path],
) -> None:
    up, ports, home = make_up
    tool_webhooks = f"http://127.0.0.1:{ports['TOOL_WEBHOOKS_PORT']}/api/v1"
    assert f"post-call webhooks: simulator -> {tool_webhooks}/webhook/elevenlabs/post-call (registered)" in (
        up.output
    ), up.output[-3000:]

    gateway = f"127.0.0.1:{ports['GATEWAY_PORT']}"
    setup, _reads = readme_blocks("Try it (sandbox mode)")
    # The spreadsheet section's commands run after it, as written, with its variables.
    [sheets] = readme_blocks("## Campaigns from spreadsheets")
    script = (setup + 'printf "\\nCALL=%s JOB=%s\\n" "$CALL" "$JOB"\n' + sheets).replace(
        "localhost:8000", gateway
    ) + 'printf "\\nSHEET_JOB=%s\\n" "$SHEET_JOB"\n'
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=home, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    ids = re.search(r"^CALL=(\S+) JOB=(\S+)$", ran.stdout, flags=re.MULTILINE)
    assert ids is not None, ran.stdout
    call_id, job_id = ids.groups()
    assert job_id.startswith("batch_"), ran.stdout

    key = (home / ".devstack" / "api-key").read_text().strip()
    with httpx.Client(base_url=f"http://{gateway}/api/v1", headers={"X-API-Key": key}, timeout=10) as api:

        def finished(path: str) -> dict[str, Any]:
            """The resource once it is final. Seconds, not the 600 s of reconciliation; the
            deadline is wide for a loaded machine."""
            seen: list[dict[str, Any]] = [{}]

            def check() -> dict[str, Any] | None:
                seen[0] = api.get(path).json()
                return seen[0] if seen[0].get("status") in FINISHED else None

            try:
                return dict(poll(check, timeout=180))
            except AssertionError as exc:
                raise AssertionError(f"{path} is not finished: {seen[0]}\n{post_mortem()}") from exc

        def post_mortem() -> str:
            """What tells a stuck call's story: the simulator's webhook deliveries and the stack's
            warnings and errors (the test's home, with make-up.log, is gone after CI)."""
            sim = f"http://127.0.0.1:{ports['ELEVENLABS_SIM_PORT']}/_sim"
            deliveries = [
                (d["conversation_id"], d["type"], d["status_code"], d["error"])
                for d in httpx.get(f"{sim}/webhooks/deliveries", timeout=10).json()["deliveries"]
            ]
            noted = [
                line
                for line in up.lines
                if re.search(r"\[(warning|error|critical)|before_its_call|restart|exited", line, re.I)
            ]
            return f"simulator deliveries: {deliveries}\nstack warnings:\n{''.join(noted[-80:])}"

        call = finished(f"/calls/{call_id}")
        assert call["status"] == "completed" and call["summary"], call
        job = finished(f"/batch-calling/{job_id}")
        assert job["status"] == "completed" and job["total_calls_finished"] == 4, job
        calls = api.get(f"/batch-calling/{job_id}/calls").json()["calls"]
        assert sorted(c["status"] for c in calls) == ["completed"] * 4, calls

        # The spreadsheet: validated (a JSON answer, valid), then submitted; its two calls complete.
        # curl -s prints answers back to back: the first JSON after the JOB line is the validation.
        validated, _ = json.JSONDecoder().raw_decode(ran.stdout.split(f"JOB={job_id}\n", 1)[1])
        assert validated["valid"] is True and validated["counts"]["converted"] == 2, validated
        assert validated["estimate"]["recipients"] == 2, validated
        sheet = re.search(r"^SHEET_JOB=(batch_\S+)$", ran.stdout, flags=re.MULTILINE)
        assert sheet is not None, ran.stdout
        sheet_job = finished(f"/batch-calling/{sheet.group(1)}")
        assert sheet_job["status"] == "completed" and sheet_job["total_calls_finished"] == 2, sheet_job


def run_script(script: str, cwd: Path, timeout: float = 300) -> tuple[int, str]:
    """`bash -euo pipefail -c script` in a session of its own; whatever it left running in the
    background (the README's webhook receiver) is ended with it. (exit status, stdout + stderr)."""
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    return proc.returncode, out


@pytest.mark.timeout(1500)
def test_the_readme_results_live_progress_and_webhook_examples_work_as_written(
    make_up: tuple[MakeUp, dict[str, int], Path],
) -> None:
    """The README's own commands for results (JSON and CSV), the live progress streams and
    webhooks (the receiver that checks signatures included), run as written after "Try it". A
    stream never ends by itself (Ctrl-C in the README): here each is cut after a few seconds."""
    _up, ports, home = make_up
    gateway = f"127.0.0.1:{ports['GATEWAY_PORT']}"
    setup, _reads = readme_blocks("Try it (sandbox mode)")
    results, per_job, every = readme_blocks("## Campaign results and live progress")
    receiver, commands = readme_blocks("## Webhooks to your systems")
    assert "OUTBOUND_ALLOW_HOSTS=127.0.0.1:9000 make up" in receiver
    receiver = receiver.replace("OUTBOUND_ALLOW_HOSTS=127.0.0.1:9000 make up", "")  # the stack is up so

    def cut(stream: str) -> str:
        [line] = [x for x in stream.splitlines() if x.startswith("curl -sN")]
        return f"echo '>>> stream'\ntimeout 8 {line} || [ $? -eq 124 ]\necho '<<< stream'\n"

    # Wait until the campaign is done, so the streams and the CSV have something to show.
    done = 'until [ "$(curl -s $API/batch-calling/$JOB -H "X-API-Key: $KEY" | field status)" = completed ]; do sleep 1; done\n'
    # The README leaves its receiver running in the background; the script ends it, so its output
    # (which the receiver shares) reaches its end.
    stop_receiver = "kill $(jobs -p)\nwait || true\n"
    script = (
        setup
        + done
        + "echo '>>> results'\n"
        + results
        + "cat results.csv\necho '<<< results'\n"
        + cut(per_job)
        + cut(every)
        + receiver
        + commands
        + stop_receiver
    ).replace("localhost:8000", gateway)
    status, out = run_script(script, home)
    assert status == 0, out[-8000:]

    section = out.split(">>> results", 1)[1].split("<<< results", 1)[0]
    assert "recipient_id,position,to_number" in section, section[-3000:]
    assert '"calls"' in section, section[-3000:]
    streams = re.findall(r">>> stream\n(.*?)<<< stream", out, flags=re.DOTALL)
    assert len(streams) == 2
    for stream in streams:
        assert "event: campaign" in stream and re.search(r"^id: \d+", stream, flags=re.MULTILINE), stream
    assert "event: recipient" in streams[1], streams[1][-2000:]
    # The receiver printed each delivery it verified, none it could not.
    assert "verified call.finished" in out and "BAD SIGNATURE" not in out, out[-5000:]
    assert '"success":false' not in out.replace(" ", ""), out[-5000:]
    assert '"webhook_id"' in out and '"signing_secret":"whsec_' in out.replace(" ", ""), out[-5000:]
