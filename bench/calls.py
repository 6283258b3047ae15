"""Call placement through the gateway against dialling the simulator directly, and the lag from a
post-call webhook's delivery to the call's final status in the gateway's read model.

    uv run python bench/calls.py [--calls 200] [--lag-calls 50]
"""

from __future__ import annotations

import argparse
import time

import httpx
from _harness import API_KEY, HEADER, pct, row, running_stack

SERVICES = ["elevenlabs-sim", "provisioning", "telephony", "tool-webhooks", "gateway"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--lag-calls", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with running_stack(SERVICES) as stack:
        api = httpx.Client(base_url=stack.url("gateway"), headers={"X-API-Key": API_KEY}, timeout=30)
        sim = httpx.Client(
            base_url=stack.url("elevenlabs-sim"), headers={"xi-api-key": "sim-key"}, timeout=30
        )
        stack.register_post_call_webhook(API_KEY)
        # Placement is measured while no call ends (no webhooks competing for the 2 cores); the lag
        # phase below then uses short calls.
        sim.post(
            "/_sim/config", json={"call_duration_ms": 600_000, "ring_ms": 600_000, "invoke_tools": False}
        )
        agent = api.post("/api/v1/agents", json={"name": "Bench"}).json()["agent_id"]
        number = api.post(
            "/api/v1/phone-numbers",
            json={"phone_number": "+14155551234", "label": "bench", "sid": "AC" + "1" * 32, "token": "t"},
        ).json()["phone_number_id"]

        seq = iter(range(10**6))

        def to_number() -> str:
            return f"+1415555{next(seq) % 900 + 100:03d}1"

        def direct() -> float:
            t0 = time.perf_counter()
            r = sim.post(
                "/v1/convai/twilio/outbound-call",
                json={"agent_id": agent, "agent_phone_number_id": number, "to_number": to_number()},
            )
            r.raise_for_status()
            return time.perf_counter() - t0

        def gateway() -> tuple[float, str]:
            t0 = time.perf_counter()
            r = api.post(
                "/api/v1/phone-numbers/twilio/outbound-call",
                json={"agent_id": agent, "agent_phone_number_id": number, "to_number": to_number()},
            )
            elapsed = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            return elapsed, r.json()["conversation_id"]

        for _ in range(args.warmup):
            direct()
            gateway()
        direct_s, gateway_s = [], []
        for _ in range(args.calls):
            direct_s.append(direct())
            gateway_s.append(gateway()[0])

        sim.post("/_sim/config", json={"call_duration_ms": 20, "ring_ms": 5})
        lags = []
        for _ in range(args.lag_calls):
            _, cid = gateway()
            while (status := api.get(f"/api/v1/calls/{cid}").json().get("status")) in (None, "dialing"):
                time.sleep(0.002)
            seen_final = time.time()
            deliveries = sim.get("/_sim/webhooks/deliveries", params={"conversation_id": cid}).json()[
                "deliveries"
            ]
            lags.append(seen_final - deliveries[-1]["timestamp"])
            assert status == "completed", status

        print(
            f"Outbound call placement, {args.calls} sequential calls (after {args.warmup} warm-up), 2 cores"
        )
        print(HEADER)
        print(row("simulator direct (dial)", direct_s))
        print(row("through gateway", gateway_s))
        print(
            f"overhead: p50 {pct(gateway_s, 50) - pct(direct_s, 50):.1f} ms, "
            f"p99 {pct(gateway_s, 99) - pct(direct_s, 99):.1f} ms; "
            f"ratio p50 {pct(gateway_s, 50) / pct(direct_s, 50):.1f}x"
        )
        print(
            f"\nPost-call webhook answered -> final status in GET /api/v1/calls/{{id}}, {args.lag_calls} calls"
        )
        print(HEADER)
        print(row("webhook to read model", lags))


if __name__ == "__main__":
    main()
