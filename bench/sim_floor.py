"""The floor under `campaigns.py`: the same calls with no Switchboard at all.

A client in this process dials the simulator directly, keeps `--concurrency` calls in flight and
starts the next one as soon as a post-call webhook (received by a bare ASGI app in this same
process) says a call ended. Nothing is stored, nothing crosses Kafka: this is the most a
perfect orchestrator could get out of this machine with the simulator on the same cores.

    uv run python bench/sim_floor.py [--calls 2000] [--concurrency 50] [--call-s 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import httpx
import uvicorn
from _harness import cpu_seconds, machine_busy_seconds, numbers, running_stack

from devinfra.broker import free_port

TWILIO = {
    "provider": "twilio",
    "phone_number": "+14155551234",
    "label": "floor",
    "sid": "AC" + "1" * 32,
    "token": "floor-token",
}


def receiver(ended: dict[str, asyncio.Future[None]]) -> Any:
    """Post-call webhooks: resolve the waiting dialler by conversation id."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        data = json.loads(body or b"{}").get("data") or {}
        waiter = ended.pop(str(data.get("conversation_id")), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def run(sim_url: str, api_key: str, calls: int, concurrency: int, call_s: float, sim_pid: int) -> None:
    ended: dict[str, asyncio.Future[None]] = {}
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(receiver(ended), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=sim_url, headers={"xi-api-key": api_key}, timeout=30, limits=limits
    ) as sim:
        await sim.post(
            "/_sim/config",
            json={
                "call_duration_ms": int(call_s * 1000),
                "ring_ms": 0,
                "processing_ms": 0,
                "invoke_tools": False,
                "webhook_url": f"http://127.0.0.1:{port}/webhook",
                "webhook_secret": "floor",
            },
        )
        agent = (
            await sim.post("/v1/convai/agents/create", json={"name": "Floor", "conversation_config": {}})
        ).json()
        phone = (await sim.post("/v1/convai/phone-numbers", json=TWILIO)).json()["phone_number_id"]
        queue = list(reversed(numbers(calls)))

        async def dialler() -> None:
            loop = asyncio.get_running_loop()
            while queue:
                to_number = queue.pop()
                done: asyncio.Future[None] = loop.create_future()
                r = await sim.post(
                    "/v1/convai/twilio/outbound-call",
                    json={
                        "agent_id": agent["agent_id"],
                        "agent_phone_number_id": phone,
                        "to_number": to_number,
                    },
                )
                r.raise_for_status()
                conversation_id = r.json()["conversation_id"]
                ended[conversation_id] = done
                await done

        cpu_before = {"simulator": cpu_seconds(sim_pid), "client + receiver": cpu_seconds(os.getpid())}
        busy_before = machine_busy_seconds()
        t0 = time.perf_counter()
        await asyncio.gather(*(dialler() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        busy = machine_busy_seconds() - busy_before
        cpu = {
            "simulator": cpu_seconds(sim_pid) - cpu_before["simulator"],
            "client + receiver": cpu_seconds(os.getpid()) - cpu_before["client + receiver"],
        }
    server.should_exit = True
    await serving
    ideal = calls / concurrency * call_s
    print(f"{calls} calls straight to the simulator, concurrency {concurrency}, calls of {call_s} s, 2 cores")
    print(f"  wall time {wall:.1f} s against ideal {ideal:.1f} s: efficiency {ideal / wall:.0%}")
    print(f"  calls per second: {calls / wall:.1f} (ideal {concurrency / call_s:.0f})")
    print("  CPU per call (ms):")
    for name, seconds in cpu.items():
        print(f"    {name:20}{seconds / calls * 1000:8.2f}")
    print(
        f"    {'whole machine':20}{busy / calls * 1000:8.2f}  (busy {busy / wall / (os.cpu_count() or 1):.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--call-s", type=float, default=0.2)
    args = parser.parse_args()
    with running_stack(["elevenlabs-sim"]) as stack:
        asyncio.run(
            run(
                stack.url("elevenlabs-sim"),
                stack.env["ELEVENLABS_API_KEY"],
                args.calls,
                args.concurrency,
                args.call_s,
                stack.process("elevenlabs-sim").pid,
            )
        )


if __name__ == "__main__":
    main()
