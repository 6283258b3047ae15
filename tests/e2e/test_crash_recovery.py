"""Provisioning is SIGKILLed while commands are in flight: no duplicate upstream resources, no lost answers."""

from __future__ import annotations

import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from devinfra.stack import Stack
from tests.e2e.conftest import poll, upstream_requests

REQUESTS = 24


def _final_result(api: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    """The outcome of a write: its 200 body, or the completed operation behind its 202."""
    if response.status_code == 200:
        return dict(response.json())
    assert response.status_code == 202, response.text
    op_url = f"/api/v1/operations/{response.json()['operation_id']}"
    done = poll(lambda: (r := api.get(op_url).json())["status"] != "pending" and r, timeout=90, interval=0.25)
    assert done["status"] == "succeeded", done
    return dict(done["result"])


def test_sigkilled_provisioning_creates_each_agent_once(
    api: httpx.Client, sim: httpx.Client, stack: Stack
) -> None:
    run = uuid.uuid4().hex[:8]
    names = [f"crash-{run}-{i}" for i in range(REQUESTS)]
    # Slow upstream creates so that kills land while calls are in flight upstream.
    sim.post(
        "/_sim/faults",
        json={
            "method": "POST",
            "path_regex": "/v1/convai/agents/create$",
            "delay_ms": 150,
            "count": REQUESTS * 2,
        },
    ).raise_for_status()

    def created_upstream() -> int:
        return sum(
            1
            for r in upstream_requests(sim, "/v1/convai/agents/create")
            if r["json"]["name"].startswith(f"crash-{run}")
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(api.post, "/api/v1/agents", json={"name": n}) for n in names]
        try:
            for threshold in (3, 10):
                poll(lambda t=threshold: created_upstream() >= t, timeout=60, interval=0.02)
                stack.kill("provisioning", signal.SIGKILL)
                stack.restart("provisioning")
        finally:
            if not stack.process("provisioning").running():
                stack.restart("provisioning")
        responses = [f.result() for f in futures]
    sim.delete("/_sim/faults")

    results = {name: _final_result(api, r) for name, r in zip(names, responses, strict=True)}
    agent_ids = [r["agent_id"] for r in results.values()]
    assert len(set(agent_ids)) == REQUESTS

    # Upstream holds exactly one agent per request.
    upstream = sim.get(
        "/v1/convai/agents",
        params={"page_size": 100, "search": f"crash-{run}"},
        headers={"xi-api-key": "sim-key"},
    ).json()
    by_name: dict[str, int] = {}
    for agent in upstream["agents"]:
        by_name[agent["name"]] = by_name.get(agent["name"], 0) + 1
    assert by_name == dict.fromkeys(names, 1)
    # And every answer is readable through the API.
    for name, result in results.items():
        assert api.get(f"/api/v1/agents/{result['agent_id']}").json()["name"] == name
