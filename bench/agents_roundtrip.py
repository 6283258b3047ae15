"""Round trip of POST /api/v1/agents through gateway -> Kafka -> provisioning -> simulator -> back,
against the same upstream work done by calling the simulator directly.

Starts its own embedded broker, a fresh database on DATABASE_URL's server (default: the local
PostgreSQL), the simulator, provisioning and the gateway as real processes, then prints p50/p99.

    uv run python bench/agents_roundtrip.py [--requests 300] [--warmup 30]
"""

from __future__ import annotations

import argparse
import time

import httpx
from _harness import API_KEY, HEADER, pct, row, running_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    with running_stack(["elevenlabs-sim", "provisioning", "gateway"]) as stack:
        sim = httpx.Client(
            base_url=stack.url("elevenlabs-sim"), headers={"xi-api-key": "sim-key"}, timeout=30
        )
        api = httpx.Client(base_url=stack.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=30)
        body = {"name": "Bench Agent", "language": "en", "first_message": "Hi", "system_prompt": "You help."}
        agent = {"first_message": "Hi", "language": "en", "prompt": {"prompt": "You help."}}
        upstream_body = {"name": "Bench Agent", "conversation_config": {"agent": agent}}

        def direct() -> float:
            # The upstream work provisioning does per agent: create, then read it back for the snapshot.
            t0 = time.perf_counter()
            agent_id = sim.post("/v1/convai/agents/create", json=upstream_body).json()["agent_id"]
            sim.get(f"/v1/convai/agents/{agent_id}").raise_for_status()
            return time.perf_counter() - t0

        def through_gateway() -> float:
            t0 = time.perf_counter()
            response = api.post("/api/v1/agents", json=body)
            elapsed = time.perf_counter() - t0
            assert response.status_code == 200, response.text
            return elapsed

        for _ in range(args.warmup):
            direct()
            through_gateway()
        direct_s, gateway_s = [], []
        for _ in range(args.requests):  # interleaved so both see the same machine conditions
            direct_s.append(direct())
            gateway_s.append(through_gateway())

    print(
        f"POST /api/v1/agents round trip, {args.requests} sequential requests (after {args.warmup} warm-up), 2 cores"
    )
    print(HEADER)
    print(row("simulator direct (create+get)", direct_s))
    print(row("through gateway", gateway_s))
    print(
        f"overhead: p50 {pct(gateway_s, 50) - pct(direct_s, 50):.1f} ms, "
        f"p99 {pct(gateway_s, 99) - pct(direct_s, 99):.1f} ms (target p99 < 50 ms); "
        f"ratio p50 {pct(gateway_s, 50) / pct(direct_s, 50):.1f}x"
    )


if __name__ == "__main__":
    main()
