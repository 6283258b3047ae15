"""Round trip of POST /api/v1/agents through gateway -> Kafka -> provisioning -> simulator -> back,
against the same upstream work done by calling the simulator directly.

Starts its own embedded broker, a fresh database on DATABASE_URL's server (default: the local
PostgreSQL), the simulator, provisioning and the gateway as real processes, then prints p50/p99.

    uv run python bench/agents_roundtrip.py [--requests 300] [--warmup 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import httpx

from devinfra.broker import TANSU_CLIENT_ENV, start_tansu
from devinfra.postgres import create_database, drop_database
from devinfra.stack import Stack

SERVER = os.environ.get("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    db = f"sb_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(SERVER, db)
    try:
        with start_tansu() as broker:
            env = {
                "DATABASE_URL": url,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "SWITCHBOARD_API_KEYS": "bench",
                "LOG_LEVEL": "WARNING",
                **TANSU_CLIENT_ENV,
            }
            with Stack(env, output=False) as stack:
                stack.start(["elevenlabs-sim", "provisioning", "gateway"])
                run(stack, args.requests, args.warmup)
    finally:
        drop_database(SERVER, db)


def run(stack: Stack, n: int, warmup: int) -> None:
    sim = httpx.Client(base_url=stack.url("elevenlabs-sim"), headers={"xi-api-key": "sim-key"}, timeout=30)
    api = httpx.Client(base_url=stack.url("gateway"), headers={"X-API-Key": "bench"}, timeout=30)
    body = {"name": "Bench Agent", "language": "en", "first_message": "Hi", "system_prompt": "You help."}
    upstream_body = {
        "name": "Bench Agent",
        "conversation_config": {"agent": {"first_message": "Hi", "language": "en", "prompt": {"prompt": "You help."}}},
    }

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

    for _ in range(warmup):
        direct()
        through_gateway()
    direct_s, gateway_s = [], []
    for _ in range(n):  # interleaved so both see the same machine conditions
        direct_s.append(direct())
        gateway_s.append(through_gateway())

    print(f"POST /api/v1/agents round trip, {n} sequential requests (after {warmup} warm-up), 2-core machine")
    print(f"{'':28}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for label, samples in (("simulator direct (create+get)", direct_s), ("through gateway", gateway_s)):
        print(f"{label:28}{pct(samples, 50):>10.1f}{pct(samples, 99):>10.1f}{statistics.mean(samples) * 1000:>10.1f}")
    overhead50 = pct(gateway_s, 50) - pct(direct_s, 50)
    overhead99 = pct(gateway_s, 99) - pct(direct_s, 99)
    print(f"overhead: p50 {overhead50:.1f} ms, p99 {overhead99:.1f} ms (target p99 < 50 ms)")
    print(f"ratio gateway/direct: p50 {pct(gateway_s, 50) / pct(direct_s, 50):.2f}x, p99 {pct(gateway_s, 99) / pct(direct_s, 99):.2f}x")


if __name__ == "__main__":
    main()
