"""Accepting a 100,000-recipient campaign: by spreadsheet (CSV upload) and by JSON.

For each: the time from sending the request to the answer (the campaign stored by the campaigns
service with its first chunk, every chunk queued), the gateway's peak resident memory during the
request (VmHWM, reset before each one through /proc/PID/clear_refs) and its resident memory before,
then how much later the orchestrator held every recipient. The campaign is scheduled for tomorrow:
accepted, not dialled.

    uv run python bench/batch_intake.py [--rows 100000] [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _harness import API_KEY, children, cpu_seconds, numbers, running_stack, status_kib

SERVICES = ["elevenlabs-sim", "provisioning", "telephony", "campaigns", "gateway"]


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux >= 4.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--processes", type=int, default=None, help="BATCH_CHECK_PROCESSES")
    parser.add_argument(
        "--first",
        choices=["csv", "json"],
        default="csv",
        help="which goes first (the second starts from the heap the first left)",
    )
    args = parser.parse_args()
    env = {
        **({"BATCH_CHECK_PROCESSES": str(args.processes)} if args.processes is not None else {}),
        "BATCH_MAX_RECIPIENTS": str(args.rows),  # the JSON route's limit (1,000 by default)
        "BATCH_FILE_MAX_ROWS": str(args.rows),
        "GATEWAY_REPLY_TIMEOUT_S": "120",
    }
    logs = Path(tempfile.mkdtemp(prefix="batch_intake_"))
    env["LOG_LEVEL"] = "INFO"  # the gateway's `gateway.batch.read` line: how long reading took

    def read_seconds(campaign_id: str) -> float | None:
        for line in (logs / "gateway.log").read_text().splitlines():
            if "gateway.batch.read" in line and campaign_id in line:
                match = re.search(r'"seconds": ([0-9.]+)', line)
                return float(match.group(1)) if match else None
        return None

    with running_stack(SERVICES, env, log_dir=logs) as stack:
        api = httpx.Client(base_url=stack.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=600)
        agent = api.post("/api/v1/agents", json={"name": "Bench"}).json()["agent_id"]
        number = api.post(
            "/api/v1/phone-numbers",
            json={"phone_number": "+14155551234", "label": "bench", "sid": "AC" + "1" * 32, "token": "t"},
        ).json()["phone_number_id"]
        gateway = stack.process("gateway").pid
        tomorrow = str(int(time.time()) + 86_400)
        fields = {"call_name": "accept", "agent_id": agent, "phone_number_id": number}

        # Each request is built before its clock starts: only sending it and the answer are timed.
        def csv_request() -> Callable[[], httpx.Response]:
            rows = numbers(args.rows)
            body = "phone_number,customer_name,city\n" + "".join(
                f"{n},Customer {i},San Francisco\n" for i, n in enumerate(rows)
            )
            request = api.build_request(
                "POST",
                "/api/v1/batch-calling/submit",
                files={"file": ("customers.csv", body.encode(), "text/csv")},
                data=fields | {"scheduled_time_unix": tomorrow},
            )
            request.read()  # the multipart body, encoded now
            return lambda: api.send(request)

        def json_request() -> Callable[[], httpx.Response]:
            payload = fields | {
                "scheduled_time_unix": int(tomorrow),
                "recipients": [
                    {
                        "phone_number": n,
                        "dynamic_variables": {"customer_name": f"Customer {i}", "city": "San Francisco"},
                    }
                    for i, n in enumerate(numbers(args.rows))
                ],
            }
            request = api.build_request(
                "POST",
                "/api/v1/batch-calling/submit",
                content=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            return lambda: api.send(request)

        print(f"Accepting {args.rows} recipients, 2 cores, every service on this machine")
        workers = children(gateway)
        print(
            f"  gateway child processes (number readers, BATCH_CHECK_PROCESSES, and multiprocessing's tracker): {len(workers)}"
        )
        order = [("CSV upload", csv_request), ("JSON body", json_request)]
        if args.first == "json":
            order.reverse()
        for label, build in order * args.runs:
            send = build()
            before = status_kib(gateway, "VmRSS")
            for pid in (gateway, *workers):
                _reset_peak(pid)
            cpu_before = sum(cpu_seconds(pid) for pid in (gateway, *workers))
            t0 = time.perf_counter()
            response = send()
            took = time.perf_counter() - t0
            cpu = sum(cpu_seconds(pid) for pid in (gateway, *workers)) - cpu_before
            peak = status_kib(gateway, "VmHWM")
            worker_peak = sum(status_kib(pid, "VmHWM") for pid in workers)
            assert response.status_code == 200, response.text[:500]
            job_id = response.json()["id"]
            read = read_seconds(job_id)
            t1 = time.perf_counter()
            while api.get(f"/api/v1/batch-calling/{job_id}").json().get("total_calls_scheduled") != args.rows:
                time.sleep(0.25)  # until the orchestrator has every chunk
            whole = time.perf_counter() - t1
            print(
                f"  {label:10}  answered in {took:5.2f} s (read and queued in {read or 0:5.2f} s; "
                f"gateway CPU {cpu:5.2f} s)   gateway RSS "
                f"{before / 1024:6.1f} MiB before, peak {peak / 1024:6.1f} MiB (+ workers {worker_peak / 1024:5.1f} MiB)"
                f"   orchestrator had every recipient {whole:5.1f} s later"
            )
            api.post(f"/api/v1/batch-calling/{job_id}/cancel")


if __name__ == "__main__":
    main()
