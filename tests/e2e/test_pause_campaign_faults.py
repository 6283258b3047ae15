"""The pause fault test: two telephony and two campaigns replicas run a 1,000-recipient campaign while
they are frozen (SIGSTOP/SIGCONT) longer than the session timeout at random moments (during dials
held open upstream and during 429 backoffs) and SIGKILLed: nobody is dialled more often than their
attempts allow, nobody is skipped, counters are exact. It prints its figures."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from devinfra.procs import wait_for_http
from devinfra.stack import Stack
from tests.e2e.conftest import DialCounter, own_stack, poll
from tests.e2e.test_campaign_faults import _all_calls
from tests.e2e.test_pause_faults import _answer, _fault, _faults_left, _start_replica, sim_config_restored

# Its own stack: the workers it freezes must not leave stale members in the shared stack's groups.
log_dir, stack, api, sim = own_stack("pausecamp")
pytestmark = pytest.mark.own_stack

__all__ = ["sim_config_restored"]


RECIPIENTS = 1000
RETRIES = 1
TELEPHONY_PAUSES = 12  # half while dials are held open upstream, half during 429 backoffs
CAMPAIGNS_PAUSES = 3
KILLS = 4
FINAL = {"completed", "no_answer", "busy", "failed", "voicemail"}
# The simulator's outcome by last digit: 0-4 completed (one dial), 5-8 retryable (1 + RETRIES dials).
COMPLETED_DIGITS = "01234"
# Counters standing still this long after the faults mean a wedge (redeliveries and recovery settle
# within seconds; a loaded machine is slow, not still).
STALL_S = 120


@dataclass
class Chaos:
    stack: Stack
    sim: httpx.Client
    rng: random.Random
    ports: dict[str, int]
    figures: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.figures[what] = self.figures.get(what, 0) + 1

    def pause(self, name: str, what: str) -> None:
        self.stack.pause(name)
        try:
            time.sleep(self.rng.uniform(2.5, 4.5))  # how long the worker is frozen (not synchronisation)
        finally:
            self.stack.resume(name)
        self.count(what)

    def pause_telephony_while(self, fault: dict[str, Any], what: str) -> None:
        """Make both telephony replicas busy with a slow or refused dial, then freeze one of them:
        each handles one command at a time, so two faults taken within the window mean both are
        holding a dial open (or sleeping in their backoff) right now."""
        _fault(self.sim, count=2, **fault)
        poll(lambda: _faults_left(self.sim) == 0, timeout=60, interval=0.02)
        self.pause(self.rng.choice(["telephony", "telephony-2"]), what)

    def kill(self, name: str) -> None:
        self.stack.supervisor.kill(name)
        self.stack.supervisor.restart(name)
        port = self.ports.get(name) or self.stack.port(name)
        wait_for_http(f"http://127.0.0.1:{port}/health/ready", timeout=60, process=self.stack.process(name))
        self.count(f"SIGKILL {name.split('-')[0]}")


def _finished_while_progressing(api: httpx.Client, job_id: str, chaos: Chaos) -> dict[str, Any]:
    """The campaign once it is final. A wedge is the failure looked for, not slowness: it fails when
    the counters stand still for STALL_S, however long a loaded machine takes in all."""
    seen: dict[str, Any] = {}
    moved = time.monotonic()

    def final_or_moving() -> dict[str, Any] | None:
        nonlocal seen, moved
        job = api.get(f"/api/v1/batch-calling/{job_id}").json()
        progress = {k: job[k] for k in ("total_calls_dispatched", "total_calls_finished", "status")}
        if progress != {k: seen.get(k) for k in progress}:
            seen, moved = job, time.monotonic()
        if job["status"] in {"completed", "failed"}:
            return dict(job)
        assert time.monotonic() - moved < STALL_S, (
            f"no progress for {STALL_S} s after the faults ({chaos.figures}): {job}"
        )
        return None

    return dict(poll(final_or_moving, timeout=1200, interval=0.5))


@pytest.mark.timeout(1500)  # about 4 min on an idle machine; the stack starts replicas and restarts
def test_pauses_and_kills_of_two_telephony_and_two_campaigns_replicas(
    api: httpx.Client, sim: httpx.Client, stack: Stack, log_dir: Path, sim_config_restored: None
) -> None:
    rng = random.Random(f"pause-{uuid.uuid4()}")
    started = time.monotonic()
    replicas = [
        _start_replica(stack, log_dir, "telephony", "telephony", "TELEPHONY_PORT"),
        _start_replica(stack, log_dir, "campaigns", "campaigns", "CAMPAIGNS_PORT"),
    ]
    chaos = Chaos(stack, sim, rng, {r.name: r.port for r in replicas})
    try:
        agent = _answer(api, api.post("/api/v1/agents", json={"name": "Pause faults"}))["agent_id"]
        phone = _answer(
            api,
            api.post(
                "/api/v1/phone-numbers",
                json={
                    "phone_number": "+14155550197",
                    "label": "pauses",
                    "sid": "AC" + "8" * 32,
                    "token": "t",
                },
            ),
        )["phone_number_id"]
        exchange = rng.randint(200, 999)
        numbers = [
            f"+1415{exchange}{i:03d}{rng.choice([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 5, 6, 7, 8])}"
            for i in range(RECIPIENTS)
        ]
        sim.post(
            "/_sim/config",
            json={"call_duration_ms": 300, "ring_ms": 50, "invoke_tools": False, "refuse_number_suffix": ""},
        ).raise_for_status()
        counter = DialCounter(sim)
        job = api.post(
            "/api/v1/batch-calling/submit",
            json={
                "call_name": "pause-faults",
                "agent_id": agent,
                "phone_number_id": phone,
                "recipients": [{"phone_number": n} for n in numbers],
                "retry_count": RETRIES,
                "concurrency_limit": 30,
            },
        )
        job_id = _answer(api, job)["id"]

        # Held dials end well within the recovery settle time (1 s), which is what lets a successor
        # see a frozen worker's dial before it decides; 429 backoffs outlast the pause's start.
        events: list[Any] = (
            [
                lambda: chaos.pause_telephony_while({"delay_ms": 800}, "pause during a held dial")
                for _ in range(TELEPHONY_PAUSES // 2)
            ]
            + [
                lambda: chaos.pause_telephony_while(
                    {"status": 429, "retry_after": 4}, "pause during a 429 backoff"
                )
                for _ in range(TELEPHONY_PAUSES // 2)
            ]
            + [
                lambda: chaos.pause(rng.choice(["campaigns", "campaigns-2"]), "pause of campaigns")
                for _ in range(CAMPAIGNS_PAUSES)
            ]
            + [
                lambda n=n: chaos.kill(n)
                for n in ["telephony", "telephony-2", "campaigns", "campaigns-2"][:KILLS]
            ]
        )
        rng.shuffle(events)
        for event in events:
            time.sleep(rng.uniform(0.2, 1.0))  # a random moment for the next fault (not synchronisation)
            event()
        chaos_s = time.monotonic() - started
        status = api.get(f"/api/v1/batch-calling/{job_id}").json()["status"]
        assert status in {"pending", "running"}, f"the campaign ended before the faults did: {status}"

        done = _finished_while_progressing(api, job_id, chaos)
    finally:
        for name in ("telephony", "telephony-2", "campaigns", "campaigns-2"):
            stack.resume(name)
        for replica in replicas:
            stack.supervisor.stop(replica.name)

    calls = _all_calls(api, job_id)
    dials = counter.since()
    allowed = {n: 1 if n[-1] in COMPLETED_DIGITS else 1 + RETRIES for n in numbers}
    too_often = {n: dials.get(n, 0) for n in numbers if dials.get(n, 0) > allowed[n]}
    skipped = [n for n in numbers if dials.get(n, 0) < allowed[n]]
    print(
        f"\npause fault test: {RECIPIENTS} recipients, 2 telephony + 2 campaigns replicas; "
        + ", ".join(f"{v} {k}" for k, v in sorted(chaos.figures.items()))
        + f"; faults over {chaos_s:.0f} s, campaign {done['status']} after {time.monotonic() - started:.0f} s"
        + f"; dials {sum(dials.get(n, 0) for n in numbers)} (expected {sum(allowed.values())}), "
        + f"numbers dialled too often {len(too_often)}, recipients skipped {len(skipped)}; counters "
        + f"scheduled/dispatched/finished {done['total_calls_scheduled']}/{done['total_calls_dispatched']}"
        + f"/{done['total_calls_finished']}",
        flush=True,
    )
    assert sum(v for k, v in chaos.figures.items() if k.startswith("pause")) >= 10
    assert too_often == {}
    assert skipped == []
    assert done["status"] == "completed"
    assert done["total_calls_scheduled"] == RECIPIENTS
    assert done["total_calls_dispatched"] == RECIPIENTS
    assert done["total_calls_finished"] == RECIPIENTS
    assert len(calls) == RECIPIENTS
    assert sorted(c["to_number"] for c in calls) == sorted(numbers)  # each recipient exactly once
    assert {c["status"] for c in calls} <= FINAL, {c["status"] for c in calls} - FINAL
