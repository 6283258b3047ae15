"""Overhead of the products tool: p50/p99 of `POST /api/v1/webhook/ecommerce/products` through
tool-webhooks (token check, conversation lookup, credential decryption, SSRF-guarded store call,
voice-friendly answer) against calling the WooCommerce stand-in directly, both at a fixed request
rate. The product cache is off, so every lookup reaches the store.

    uv run python bench/webhook_overhead.py [--rate 200] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import subprocess
import sys
import time
import uuid

import httpx
from _harness import HEADER, pct, quiet_collector, row, running_stack
from aiokafka import AIOKafkaProducer

from bus.runtime import message_headers
from bus.secrets import Keyring, message_context, mint_tool_token, new_key
from contracts import topics
from contracts.provisioning import ToolCreated, ToolRecord, ToolToken
from contracts.telephony import CallPlaced
from devinfra.broker import free_port
from devinfra.procs import wait_for_http
from devinfra.standins.stores import WOO_KEY, WOO_SECRET

STAND_IN = (
    "import sys, uvicorn; from devinfra.standins.stores import StoreState, woo_app; "
    "uvicorn.run(woo_app(StoreState()), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


async def fixed_rate(rate: float, seconds: float, send: object) -> list[float]:
    """Start one request every 1/rate seconds (open loop: a slow answer never delays the next)."""
    latencies: list[float] = []

    async def one() -> None:
        t0 = time.perf_counter()
        await send()  # type: ignore[operator]
        latencies.append(time.perf_counter() - t0)

    tasks = []
    with quiet_collector():
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the open-loop load generator
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


async def measure(
    tool_url: str, store_url: str, token: str, conversation_id: str, rate: float, seconds: float
) -> None:
    auth = "Basic " + base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def direct() -> None:
            r = await client.get(
                f"{store_url}/wp-json/wc/v3/products",
                params={"search": "mug", "per_page": 3, "status": "publish"},
                headers={"Authorization": auth},
            )
            r.raise_for_status()

        async def through_tool() -> None:
            r = await client.post(
                tool_url,
                json={"conversation_id": conversation_id, "query": "mug", "limit": 3},
                headers={"X-Switchboard-Tool-Token": token},
            )
            r.raise_for_status()
            assert "Mug" in r.text, r.text

        for _ in range(50):  # warm-up: connections, caches of the interpreter
            await direct()
            await through_tool()
        direct_s = await fixed_rate(rate, seconds, direct)
        tool_s = await fixed_rate(rate, seconds, through_tool)
    print(f"Products lookup at {rate:.0f} requests/s for {seconds:.0f} s each (open loop), 2 cores")
    print(HEADER)
    print(row("store stand-in direct", direct_s))
    print(row("through tool-webhooks", tool_s))
    print(
        f"overhead: p50 {pct(tool_s, 50) - pct(direct_s, 50):.1f} ms, "
        f"p99 {pct(tool_s, 99) - pct(direct_s, 99):.1f} ms (target p99 < 10 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    store_port = free_port()
    store = subprocess.Popen([sys.executable, "-c", STAND_IN, str(store_port)])
    store_url = f"http://127.0.0.1:{store_port}"
    try:
        wait_for_http(f"{store_url}/docs", timeout=20)
        secret_key = new_key()
        keyring = Keyring(secret_key)
        env = {
            "SWITCHBOARD_SECRET_KEY": secret_key,
            "ELEVENLABS_API_KEY": "unused",
            "ELEVENLABS_BASE_URL": "http://127.0.0.1:9",
            "OUTBOUND_ALLOW_HOSTS": f"127.0.0.1:{store_port}",
            "ALLOW_HTTP_STORES": "true",
            "PRODUCT_CACHE_TTL_S": "0",
        }
        with running_stack(["tool-webhooks"], env) as stack:
            conversation_id = f"conv_bench_{uuid.uuid4().hex[:8]}"
            credentials = keyring.encrypt(
                f'{{"platform":"woocommerce","base_url":"{store_url}","api_key":"{WOO_KEY}","api_secret":"{WOO_SECRET}"}}',
                context=message_context("ecommerce_credentials_encrypted"),
            )
            event = CallPlaced(
                conversation_id=conversation_id,
                provider="twilio",
                agent_id="agent_bench",
                phone_number_id="phnum_bench",
                to_number="+14155550100",
                ecommerce_platform="woocommerce",
                ecommerce_credentials_encrypted=credentials,
                placed_at_unix=int(time.time()),
            )

            # the products tool, as provisioning announces it: tool-webhooks then accepts its token
            tool = ToolCreated(
                tool=ToolRecord(
                    tool_id="tool_bench",
                    name="get_products",
                    purpose="ecommerce_products",
                    created_at_unix=int(time.time()),
                    token=ToolToken(token_id="bench", route="ecommerce/products", generation=1),  # noqa: S106 - an id
                )
            )

            async def publish() -> None:
                producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP_SERVERS"])
                await producer.start()
                try:
                    for topic, message, key in (
                        (topics.TELEPHONY_EVENTS, event, conversation_id),
                        (topics.PROVISIONING_EVENTS, tool, "tool_bench"),
                    ):
                        await producer.send_and_wait(
                            topic,
                            message.model_dump_json().encode(),
                            key=key.encode(),
                            headers=[(k, v.encode()) for k, v in message_headers(message).items()],
                        )
                finally:
                    await producer.stop()

            asyncio.run(publish())
            tool_url = f"{stack.url('tool-webhooks')}/api/v1/webhook/ecommerce/products"
            token = mint_tool_token(keyring, "ecommerce/products", "bench", 1)
            deadline = time.monotonic() + 30
            while (
                "Mug"
                not in httpx.post(
                    tool_url,
                    json={"conversation_id": conversation_id, "query": "mug"},
                    headers={"X-Switchboard-Tool-Token": token},
                ).text
            ):
                assert time.monotonic() < deadline, "tool-webhooks never learnt the conversation and the tool"
                time.sleep(0.1)
            asyncio.run(measure(tool_url, store_url, token, conversation_id, args.rate, args.seconds))
    finally:
        store.terminate()
        store.wait(timeout=10)


if __name__ == "__main__":
    main()
