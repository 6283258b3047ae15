"""Upstream errors map cleanly; a slow upstream turns into a pending operation that completes."""

from __future__ import annotations

import httpx

from tests.e2e.conftest import REPLY_TIMEOUT_S, poll, upstream_requests


def _fault(sim: httpx.Client, **fault: object) -> None:
    sim.post("/_sim/faults", json={"method": "POST", "count": 1} | fault).raise_for_status()


def test_upstream_422_is_422_with_detail(api: httpx.Client, sim: httpx.Client) -> None:
    _fault(sim, path_regex="/v1/convai/agents/create$", status=422, body={"detail": [{"msg": "bad voice"}]})
    response = api.post("/api/v1/agents", json={"name": "Rejected"})
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False and "bad voice" in response.json()["detail"]


def test_upstream_401_is_authentication_failed(api: httpx.Client, sim: httpx.Client) -> None:
    _fault(sim, path_regex="/v1/convai/knowledge-base/text$", status=401)
    response = api.post("/api/v1/knowledge-base/text", json={"text": "x", "name": "unauth"})
    assert response.status_code == 401
    assert response.json()["error"] == "Authentication failed"


def test_upstream_429_is_retried_honouring_retry_after(api: httpx.Client, sim: httpx.Client) -> None:
    _fault(sim, path_regex="/v1/convai/knowledge-base/text$", status=429, retry_after=1, count=2)
    response = api.post("/api/v1/knowledge-base/text", json={"text": "x", "name": "after-429"})
    assert response.status_code == 200, response.text
    attempts = [
        r
        for r in upstream_requests(sim, "/v1/convai/knowledge-base/text")
        if r["json"]["name"] == "after-429"
    ]
    assert [r["status"] for r in attempts] == [429, 429, 200]


def test_slow_upstream_gives_202_then_the_operation_completes(api: httpx.Client, sim: httpx.Client) -> None:
    _fault(sim, path_regex="/v1/convai/agents/create$", delay_ms=int((REPLY_TIMEOUT_S + 1.5) * 1000))
    response = api.post("/api/v1/agents", json={"name": "Slowpoke"})
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending"
    op_url = f"/api/v1/operations/{pending['operation_id']}"
    done = poll(lambda: (r := api.get(op_url).json())["status"] != "pending" and r)
    assert done["status"] == "succeeded" and done["status_code"] == 200
    agent_id = done["result"]["agent_id"]
    assert api.get(f"/api/v1/agents/{agent_id}").json()["name"] == "Slowpoke"
