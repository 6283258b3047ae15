from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from elevenlabs_sim import SimSettings, create_app
from elevenlabs_sim.testing import free_port, run_in_thread

from .conftest import API_KEY, WEBHOOK_TOOL, wait_until

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


async def test_fault_429_applied_count_times_then_normal(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/_sim/faults",
        json={
            "method": "POST",
            "path_regex": "^/v1/convai/tools$",
            "status": 429,
            "count": 2,
            "retry_after": 1,
        },
    )
    assert r.status_code == 200
    for _ in range(2):
        r = await client.post("/v1/convai/tools", json={"tool_config": WEBHOOK_TOOL})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "1"
        assert r.json()["detail"]["status"] == "system_busy"
    # The handler never ran for the faulted requests.
    assert (await client.get("/_sim/state")).json()["tools"] == 0
    assert (await client.get("/v1/convai/tools")).status_code == 200  # GET does not match
    r = await client.post("/v1/convai/tools", json={"tool_config": WEBHOOK_TOOL})
    assert r.status_code == 200
    assert (await client.get("/_sim/faults")).json() == {"faults": []}


async def test_fault_custom_body_delay_and_clear(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/faults", json={"path_regex": "agents", "status": 503, "body": {"oops": True}})
    r = await client.get("/v1/convai/agents")
    assert (r.status_code, r.json()) == (503, {"oops": True})

    await client.post("/_sim/faults", json={"path_regex": "knowledge-base/text", "delay_ms": 150})
    started = time.monotonic()
    r = await client.post("/v1/convai/knowledge-base/text", json={"text": "slow"})
    assert r.status_code == 200  # the real handler still runs after the delay
    assert time.monotonic() - started >= 0.14
    assert (await client.get("/_sim/state")).json()["knowledge_base"] == 1

    await client.post("/_sim/faults", json={"status": 500, "count": 5})
    assert (await client.delete("/_sim/faults")).json() == {"cleared": 1}
    assert (await client.get("/v1/convai/agents")).status_code == 200


async def test_request_log(client: httpx.AsyncClient) -> None:
    await client.post("/v1/convai/secrets", json={"type": "new", "name": "n", "value": "v"})
    await client.get("/v1/convai/tools", params={"page_size": 5, "types": ["webhook", "client"]})
    await client.post("/v1/convai/knowledge-base/file", files={"file": ("a.txt", b"abc")}, data={"name": "A"})
    await client.get("/v1/convai/agents", headers={"xi-api-key": "wrong"})

    log = (await client.get("/_sim/requests")).json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/v1/convai/secrets", 200),
        ("GET", "/v1/convai/tools", 200),
        ("POST", "/v1/convai/knowledge-base/file", 200),
        ("GET", "/v1/convai/agents", 401),
    ]
    assert log[0]["json"] == {"type": "new", "name": "n", "value": "v"}
    assert all("xi-api-key" not in e["headers"] for e in log)
    assert log[1]["query"] == {"page_size": "5", "types": ["webhook", "client"]}
    assert log[2]["form"]["name"] == "A"
    assert log[2]["form"]["file"]["filename"] == "a.txt"
    assert isinstance(log[0]["timestamp"], float)

    only = (await client.get("/_sim/requests", params={"path": "secrets"})).json()["requests"]
    assert len(only) == 1
    assert (await client.delete("/_sim/requests")).json() == {"cleared": 4}
    assert (await client.get("/_sim/requests")).json() == {"requests": []}


async def test_reset_and_state(client: httpx.AsyncClient) -> None:
    await client.post("/v1/convai/tools", json={"tool_config": WEBHOOK_TOOL})
    await client.post("/v1/convai/agents/create", json={"conversation_config": {}})
    counts = (await client.get("/_sim/state")).json()
    assert counts["tools"] == 1
    assert counts["agents"] == 1
    assert (await client.post("/_sim/reset")).json() == {"ok": True}
    counts = (await client.get("/_sim/state")).json()
    assert counts == {k: 0 for k in counts}


async def test_failure_rate_and_latency() -> None:
    app: FastAPI = create_app(SimSettings(api_key=API_KEY, failure_rate=1.0, seed=3, latency_ms=50))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://sim", headers={"xi-api-key": API_KEY}
    ) as c:
        started = time.monotonic()
        statuses = {(await c.get("/v1/convai/tools")).status_code for _ in range(8)}
        assert statuses <= {429, 503}
        assert time.monotonic() - started >= 0.35
        assert (await c.get("/_sim/state")).status_code == 200


async def test_run_in_thread_over_http() -> None:
    with run_in_thread(SimSettings(api_key=API_KEY)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, headers={"xi-api-key": API_KEY}) as c:
            r = await c.post("/v1/convai/agents/create", json={"name": "http", "conversation_config": {}})
            assert r.status_code == 200
            agent = (await c.get(f"/v1/convai/agents/{r.json()['agent_id']}")).json()
            assert agent["name"] == "http"
            # A slow upstream: the client gives up, the simulator still completes the work.
            await c.post("/_sim/faults", json={"path_regex": "knowledge-base/text", "delay_ms": 300})
            with pytest.raises(httpx.ReadTimeout):
                await c.post("/v1/convai/knowledge-base/text", json={"text": "late"}, timeout=0.1)

            async def stored() -> bool:
                return bool((await c.get("/_sim/state")).json()["knowledge_base"] == 1)

            await wait_until(stored)  # the delayed request ends after the client gave up on it


def test_cli_starts_and_logs_one_line() -> None:
    port = free_port()
    env = {**os.environ, "ELEVENLABS_SIM_API_KEY": API_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "elevenlabs_sim", "--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().strip() == f"ElevenLabs simulator listening on http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/convai/tools", headers={"xi-api-key": API_KEY})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_committed_spec_subset_is_current() -> None:
    sys.path.insert(0, str(SCRIPTS))
    try:
        import extract_spec  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(SCRIPTS))
    source = extract_spec.find_full_spec()
    if source is None:
        pytest.skip("full ElevenLabs OpenAPI spec not available")
    full = json.loads(source.read_text("utf-8"))
    expected = extract_spec.render(extract_spec.extract(full, extract_spec.served_operations()))
    assert extract_spec.SUBSET_PATH.read_text("utf-8") == expected, "re-run scripts/extract_spec.py"


async def test_fault_after_performs_the_request_then_answers_the_fault(client: httpx.AsyncClient) -> None:
    await client.post(
        "/_sim/faults",
        json={"method": "POST", "path_regex": "^/v1/convai/tools$", "status": 500, "after": True},
    )
    r = await client.post("/v1/convai/tools", json={"tool_config": WEBHOOK_TOOL})
    assert r.status_code == 500
    assert r.json()["detail"]["status"] == "internal_server_error"
    assert (await client.get("/_sim/state")).json()["tools"] == 1  # created all the same

    # "created, then time out": the answer comes only after the delay
    await client.post(
        "/_sim/faults", json={"path_regex": "knowledge-base/text", "delay_ms": 150, "after": True}
    )
    started = time.monotonic()
    r = await client.post("/v1/convai/knowledge-base/text", json={"text": "slow"})
    assert r.status_code == 200 and time.monotonic() - started >= 0.14
    assert (await client.get("/_sim/state")).json()["knowledge_base"] == 1


async def test_fault_after_still_requires_auth(client: httpx.AsyncClient) -> None:
    await client.post("/_sim/faults", json={"path_regex": "tools", "status": 500, "after": True})
    r = await client.post(
        "/v1/convai/tools", json={"tool_config": WEBHOOK_TOOL}, headers={"xi-api-key": "no"}
    )
    assert r.status_code == 401
    assert (await client.get("/_sim/state")).json()["tools"] == 0


async def test_workspace_webhook_delete(client: httpx.AsyncClient) -> None:
    settings = {"auth_type": "hmac", "name": "n", "webhook_url": "https://sb.example/hook"}
    webhook_id = (await client.post("/v1/workspace/webhooks", json={"settings": settings})).json()[
        "webhook_id"
    ]
    await client.patch("/v1/convai/settings", json={"webhooks": {"post_call_webhook_id": webhook_id}})
    r = await client.delete(f"/v1/workspace/webhooks/{webhook_id}")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    assert (await client.get("/v1/workspace/webhooks")).json()["webhooks"] == []
    assert (await client.get("/v1/convai/settings")).json()["webhooks"]["post_call_webhook_id"] is None
    assert (await client.delete(f"/v1/workspace/webhooks/{webhook_id}")).status_code == 404
