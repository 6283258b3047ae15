"""Process pauses (SIGSTOP/SIGCONT), not only kills: a worker frozen past its session timeout wakes up
after its work was taken over, and must not act on it. Nobody is dialled twice for one attempt.

The environment (tests/e2e/conftest.py): Kafka session timeout 2 s, TELEPHONY_OWNER_TIMEOUT_S 2 s,
TELEPHONY_RECOVERY_SETTLE_S 1 s; every pause here is longer than both.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devinfra.broker import free_port
from devinfra.procs import wait_for_http
from devinfra.stack import Stack
from tests.e2e.conftest import own_stack, poll

# Its own stack: the workers it freezes must not leave stale members in the shared stack's groups.
log_dir, stack, api, sim = own_stack("pauses")
pytestmark = pytest.mark.own_stack

DIAL_PATH = "^/v1/convai/twilio/outbound-call$"


@dataclass
class Replica:
    name: str
    port: int
    log: Path


def _start_replica(stack: Stack, log_dir: Path, service: str, module: str, port_env: str) -> Replica:
    replica = Replica(f"{service}-2", free_port(), log_dir / f"{service}-2.log")
    proc = stack.supervisor.start(
        replica.name,
        [sys.executable, "-m", module],
        env=stack.env | {port_env: str(replica.port)},
        output=False,
        log_file=str(replica.log),
    )
    wait_for_http(f"http://127.0.0.1:{replica.port}/health/ready", timeout=60, process=proc)
    return replica


def _answer(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    """A write's result: its 200 body, or (the machine is busy) the finished operation behind a 202."""
    if response.status_code == 200:
        return dict(response.json())
    assert response.status_code == 202, response.text
    url = f"/api/v1/operations/{response.json()['operation_id']}"
    done = poll(lambda: (r := api.get(url).json())["status"] != "pending" and r, timeout=90, interval=0.25)
    assert done["status"] == "succeeded", done
    return dict(done["result"])


def _dials(sim: httpx.Client, number: str) -> int:
    return int(sim.get("/_sim/calls/stats").json()["dials_by_number"].get(number, 0))


def _fault(sim: httpx.Client, **spec: Any) -> None:
    sim.post("/_sim/faults", json={"method": "POST", "path_regex": DIAL_PATH} | spec).raise_for_status()


def _faults_left(sim: httpx.Client) -> int:
    return sum(f["remaining"] for f in sim.get("/_sim/faults").json()["faults"])


@pytest.fixture
def sim_config_restored(sim: httpx.Client) -> Iterator[None]:
    before = sim.get("/_sim/config").json()
    yield
    sim.delete("/_sim/faults")
    keep = ("call_duration_ms", "ring_ms", "invoke_tools", "refuse_number_suffix")
    sim.post("/_sim/config", json={k: before[k] for k in keep}).raise_for_status()


@pytest.mark.timeout(600)  # starts a replica and waits out an 8 s backoff, on top of the stack's start
@pytest.mark.usefixtures("sim_config_restored")
def test_a_paused_worker_in_its_429_backoff_does_not_dial_after_its_successor_did(
    api: httpx.Client, sim: httpx.Client, stack: Stack, log_dir: Path
) -> None:
    """The issue's example: the first dial gets 429 with Retry-After 8; worker A sleeps in its
    backoff and is paused past the session timeout; worker B takes the partition, recovers and
    dials; A is resumed. A must find it lost the attempt and not dial: one call, not two."""
    agent = _answer(api, api.post("/api/v1/agents", json={"name": "Pause"}))["agent_id"]
    phone = _answer(
        api,
        api.post(
            "/api/v1/phone-numbers",
            json={"phone_number": "+14155550198", "label": "pause", "sid": "AC" + "7" * 32, "token": "t"},
        ),
    )["phone_number_id"]
    number = f"+1415555{uuid.uuid4().int % 900 + 100:03d}1"
    a_log = log_dir / "telephony.log"
    a_log_start = a_log.stat().st_size
    _fault(sim, status=429, retry_after=8, count=1)

    # Only replica A ("telephony") runs, so it takes the command. The request is sent from another
    # thread: its answer waits for the outcome, and A must be frozen while it sleeps in its backoff.
    with (
        httpx.Client(base_url=str(api.base_url), headers=api.headers, timeout=120) as caller,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        placed = pool.submit(
            caller.post,
            "/api/v1/phone-numbers/twilio/outbound-call",
            json={"agent_id": agent, "agent_phone_number_id": phone, "to_number": number},
        )
        poll(lambda: _faults_left(sim) == 0, timeout=60, interval=0.02)  # A got its 429: it sleeps 8 s
        stack.pause("telephony")
    b: Replica | None = None
    try:
        assert _dials(sim, number) == 0, "A was frozen too late (after its backoff): the machine is too slow"
        assert placed.result().status_code in (200, 202), placed.result().text
        b = _start_replica(stack, log_dir, "telephony", "telephony", "TELEPHONY_PORT")
        # B gets the partition once A's session expired, and the attempt once A's lock is gone.
        poll(lambda: _dials(sim, number) >= 1, timeout=90, interval=0.1)
        stack.resume("telephony")

        def a_gave_up_or_dialled() -> bool:
            return _dials(sim, number) >= 2 or b"bus.ownership.lost" in a_log.read_bytes()[a_log_start:]

        poll(a_gave_up_or_dialled, timeout=60, interval=0.1)  # A woke up and decided
    finally:
        stack.resume("telephony")
        if b is not None:
            stack.supervisor.stop(b.name)
    assert _dials(sim, number) == 1
    calls = sim.get("/_sim/calls", params={"to_number": number}).json()["calls"]
    assert len(calls) == 1
    conversation_id = calls[0]["conversation_id"]
    shown = poll(lambda: (c := api.get(f"/api/v1/calls/{conversation_id}")).status_code == 200 and c.json())
    assert shown["to_number"] == number
