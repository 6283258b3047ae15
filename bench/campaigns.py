"""Campaign throughput and acceptance.

1. A campaign of N recipients (default 10,000) at concurrency C (50) with simulated calls of
   0.2 s: wall time against the ideal (N / C x call time), efficiency, CPU time per call of each
   process (from /proc), and the slot turnaround: from a post-call webhook answered to the next
   dial placed in the slot it freed (the simulator's clock for both), cut into segments at the
   timestamps the services' tables keep (`turnaround_segments`).
2. The time to accept a 100,000-recipient submission through REST (limit raised), until the
   campaign is stored and answered.

    uv run python bench/campaigns.py [--recipients 10000] [--concurrency 50] [--call-s 0.2] [--accept 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import asyncpg
import httpx
from _harness import (
    API_KEY,
    broker_pid,
    cpu_seconds,
    database_work,
    machine_busy_seconds,
    numbers,
    postgres_seconds,
    rss_mib,
    running_stack,
)

SERVICES = ["elevenlabs-sim", "provisioning", "telephony", "tool-webhooks", "campaigns", "gateway"]


def slot_turnarounds(sim: httpx.Client, concurrency: int) -> list[float]:
    """Seconds from the k-th post-call webhook answered (2xx) to the (C + k)-th dial, in the
    simulator's clock: with C calls in flight, the k-th slot freed is refilled by dial C + k.
    Only meaningful while recipients remain and the campaign keeps C calls in flight."""
    dials = sorted(call["started_at"] for call in sim.get("/_sim/calls").json()["calls"])
    deliveries = sim.get("/_sim/webhooks/deliveries", params={"type": "post_call_transcription"}).json()
    answered = sorted(
        d["timestamp"] for d in deliveries["deliveries"] if d["status_code"] and 200 <= d["status_code"] < 300
    )
    return [dials[concurrency + k] - answered[k] for k in range(min(len(answered), len(dials) - concurrency))]


SEGMENT_QUERIES = {
    # Telephony's inbox holds the post-call webhooks and the PlaceCall commands it consumed; the
    # ledger's rows are the commands, so the rest are the webhooks.
    "webhooks": "SELECT extract(epoch FROM processed_at) FROM telephony.inbox"
    " WHERE message_id NOT IN (SELECT message_id FROM telephony.upstream_commands)",
    "finished": "SELECT extract(epoch FROM finished_at) FROM campaigns.attempts WHERE finished_at IS NOT NULL",
    "dialed": "SELECT extract(epoch FROM dialed_at) FROM campaigns.attempts",
    "placing": "SELECT extract(epoch FROM started_at) FROM telephony.upstream_commands"
    " WHERE command_type = 'call.place'",
}


async def _segment_times(database_url: str) -> dict[str, list[float]]:
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return {
            name: sorted(float(row[0]) for row in await connection.fetch(query))
            for name, query in SEGMENT_QUERIES.items()
        }
    finally:
        await connection.close()


def turnaround_segments(sim: httpx.Client, database_url: str, concurrency: int) -> dict[str, list[float]]:
    """The slot turnaround cut at what the services' tables keep, paired by order as
    `slot_turnarounds` pairs (the k-th webhook answered frees the slot of dial C + k), in seconds:
    answered -> telephony's transaction of the webhook (the inbox row: tool-webhooks' commit, relay,
    Kafka hop) -> campaigns' outcome (`attempts.finished_at`: telephony's transaction, relay, hop,
    campaigns' consume) -> the scheduler pass that dialled the slot (`dialed_at`, the pass's clock
    when it began) -> telephony's ledger row of the PlaceCall (the rest of the pass, its commit,
    relay, hop) -> the simulator's call (the upstream request). Timestamps are PostgreSQL's `now()`
    (a transaction's start) or the services' clocks, all this machine's."""
    times = asyncio.run(_segment_times(database_url))
    dials = sorted(call["started_at"] for call in sim.get("/_sim/calls").json()["calls"])
    deliveries = sim.get("/_sim/webhooks/deliveries", params={"type": "post_call_transcription"}).json()
    answered = sorted(
        d["timestamp"] for d in deliveries["deliveries"] if d["status_code"] and 200 <= d["status_code"] < 300
    )
    webhooks, finished, dialed, placing = (times[k] for k in ("webhooks", "finished", "dialed", "placing"))
    slots = (
        min(len(answered), len(webhooks), len(finished), len(dials), len(dialed), len(placing)) - concurrency
    )
    c = concurrency
    return {
        "answered -> telephony has the webhook": [webhooks[k] - answered[k] for k in range(slots)],
        "-> campaigns has the outcome": [finished[k] - webhooks[k] for k in range(slots)],
        "-> scheduler pass begins": [dialed[c + k] - finished[k] for k in range(slots)],
        "-> telephony has the PlaceCall": [placing[c + k] - dialed[c + k] for k in range(slots)],
        "-> the simulator has the call": [dials[c + k] - placing[c + k] for k in range(slots)],
    }


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--call-s", type=float, default=0.2)
    parser.add_argument("--accept", type=int, default=100_000)
    parser.add_argument(
        "--fetch-wait-ms",
        type=int,
        default=10,
        help="KAFKA_FETCH_MAX_WAIT_MS (the embedded broker polls with it)",
    )
    args = parser.parse_args()
    env = {
        "BATCH_MAX_RECIPIENTS": str(max(args.accept, args.recipients)),
        "CAMPAIGNS_GLOBAL_CONCURRENCY": str(args.concurrency),
        "GATEWAY_REPLY_TIMEOUT_S": "120",
        "KAFKA_FETCH_MAX_WAIT_MS": str(args.fetch_wait_ms),
    }
    with running_stack(SERVICES, env) as stack:
        api = httpx.Client(base_url=stack.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=300)
        sim = httpx.Client(base_url=stack.url("elevenlabs-sim"), timeout=30)
        stack.register_post_call_webhook(API_KEY)
        sim.post(
            "/_sim/config",
            json={
                "call_duration_ms": int(args.call_s * 1000),
                "ring_ms": 0,
                "processing_ms": 0,
                "invoke_tools": False,
            },
        )
        agent = api.post("/api/v1/agents", json={"name": "Bench"}).json()["agent_id"]
        number = api.post(
            "/api/v1/phone-numbers",
            json={"phone_number": "+14155551234", "label": "bench", "sid": "AC" + "1" * 32, "token": "t"},
        ).json()["phone_number_id"]

        pids = {name: stack.process(name).pid for name in SERVICES}
        broker = broker_pid()
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        rss_before = {name: rss_mib(pid) for name, pid in pids.items()}
        broker_before = cpu_seconds(broker) if broker else 0.0
        postgres_before = postgres_seconds()
        busy_before = machine_busy_seconds()
        work_before = {name: database_work(stack.url(name)) for name in SERVICES}
        t0 = time.perf_counter()
        job = api.post(
            "/api/v1/batch-calling/submit",
            json={
                "call_name": "bench",
                "agent_id": agent,
                "phone_number_id": number,
                "recipients": [{"phone_number": n} for n in numbers(args.recipients)],
                "concurrency_limit": args.concurrency,
            },
        )
        assert job.status_code == 200, job.text
        job_id = job.json()["id"]
        while (status := api.get(f"/api/v1/batch-calling/{job_id}").json())["status"] not in (
            "completed",
            "failed",
        ):
            time.sleep(0.5)  # polling the campaign's progress with the REST API
        wall = time.perf_counter() - t0
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        rss_after = {name: rss_mib(pid) for name, pid in pids.items()}
        broker_cpu = (cpu_seconds(broker) - broker_before) if broker else 0.0
        postgres_cpu = postgres_seconds() - postgres_before
        busy = machine_busy_seconds() - busy_before
        work = {
            name: tuple(a - b for a, b in zip(database_work(stack.url(name)), work_before[name], strict=True))
            for name in SERVICES
        }
        stats = sim.get("/_sim/calls/stats").json()
        ideal = args.recipients / args.concurrency * args.call_s
        print(
            f"Campaign of {args.recipients} recipients, concurrency {args.concurrency}, calls of {args.call_s} s, 2 cores"
        )
        print(f"  status {status['status']}, finished {status['total_calls_finished']}")
        print(f"  wall time {wall:.1f} s against ideal {ideal:.1f} s: efficiency {ideal / wall:.0%}")
        print(
            f"  max concurrent calls seen by the simulator: {stats['max_concurrent_observed']} (cap {args.concurrency})"
        )
        print(f"  calls per second: {args.recipients / wall:.1f}")
        turnarounds = slot_turnarounds(sim, args.concurrency)
        if turnarounds:
            print(
                f"  slot turnaround (webhook answered -> next dial in that slot), {len(turnarounds)} slots: "
                f"p50 {percentile(turnarounds, 50) * 1000:.0f} ms, p99 {percentile(turnarounds, 99) * 1000:.0f} ms"
                + (
                    " (negative: dials ran ahead of the webhooks, the slots were not the limit)"
                    if min(turnarounds) < 0
                    else ""
                )
            )
            for name, seconds in turnaround_segments(
                sim, stack.env["DATABASE_URL"], args.concurrency
            ).items():
                if seconds:
                    print(
                        f"    {name:40} p50 {percentile(seconds, 50) * 1000:6.1f} ms,"
                        f" p99 {percentile(seconds, 99) * 1000:6.1f} ms"
                    )
        print("  CPU per call by process (ms), and resident memory before -> after the campaign (MiB):")
        for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
            print(
                f"    {name:16}{seconds / args.recipients * 1000:8.2f}"
                f"    {rss_before[name]:6.1f} -> {rss_after[name]:6.1f}"
            )
        print(
            f"    {'all services':16}{sum(cpu.values()) / args.recipients * 1000:8.2f}  (plus PostgreSQL and the broker)"
        )
        print(f"    {'broker (Tansu)':16}{broker_cpu / args.recipients * 1000:8.2f}")
        print(
            f"    {'PostgreSQL':16}{postgres_cpu / args.recipients * 1000:8.2f}  (every process of the server)"
        )
        print(
            f"    {'whole machine':16}{busy / args.recipients * 1000:8.2f}  "
            f"(busy {busy / wall / (os.cpu_count() or 1):.0%} of {os.cpu_count()} cores)"
        )
        print("  PostgreSQL work per call by service: statements, transactions")
        for name, (statements, transactions) in sorted(work.items(), key=lambda kv: -kv[1][0]):
            if statements:
                print(
                    f"    {name:16}{statements / args.recipients:8.1f}{transactions / args.recipients:8.1f}"
                )
        print(
            f"    {'all services':16}{sum(w[0] for w in work.values()) / args.recipients:8.1f}"
            f"{sum(w[1] for w in work.values()) / args.recipients:8.1f}"
        )

        if args.accept:
            payload = {
                "call_name": "accept",
                "agent_id": agent,
                "phone_number_id": number,
                "recipients": [{"phone_number": n} for n in numbers(args.accept)],
                "scheduled_time_unix": int(time.time()) + 86_400,  # accepted, not dialled
            }
            t0 = time.perf_counter()
            accepted = api.post("/api/v1/batch-calling/submit", json=payload)
            took = time.perf_counter() - t0
            print(
                f"\nAccepting {args.accept} recipients through REST: HTTP {accepted.status_code} in {took:.1f} s"
            )
            t0 = time.perf_counter()
            job_id = accepted.json().get("id") or accepted.json().get("operation_id")
            while (
                api.get(f"/api/v1/batch-calling/{job_id}").json().get("total_calls_scheduled") != args.accept
            ):
                time.sleep(0.5)  # until the orchestrator has every chunk
            print(f"  orchestrator had every recipient {time.perf_counter() - t0:.1f} s later")


if __name__ == "__main__":
    main()
