"""What admitting a request costs the gateway (`AccessService.admit`, run by the guard before every
/api/v1 request): the key check, the scope, the rate-limit bucket, on a fresh database.

    uv run python bench/api_keys.py [--requests 2000]

Cases: a SWITCHBOARD_API_KEYS key with rate limits off (no database), the same key with its bucket
(one statement), a stored key (its row and its bucket, one transaction), and a stored key refused 429
(its row, the refused take and the read of the bucket's level).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

from _harness import HEADER, SERVER, quiet_collector, row

from bus.migrate import upgrade
from devinfra.postgres import create_database, drop_database
from gateway.access import Scope
from gateway.bootstrap import bootstrap
from gateway.errors import RateLimited
from gateway.settings import Settings

MIGRATIONS = Path(__file__).parents[1] / "services" / "gateway" / "src" / "gateway" / "migrations"


async def measure(url: str, requests: int) -> None:
    # Limits that never refuse, so every call pays for its bucket.
    limited = bootstrap(
        Settings.model_validate(
            {"DATABASE_URL": url, "SWITCHBOARD_API_KEYS": "env-key", "GATEWAY_RATE_LIMIT_PER_S": 1e9}
        )
    )
    unlimited = bootstrap(
        Settings.model_validate(
            {"DATABASE_URL": url, "SWITCHBOARD_API_KEYS": "env-key", "GATEWAY_RATE_LIMIT_PER_S": 0}
        )
    )
    try:
        _, stored = await limited.access.create_key("bench", Scope.OPERATOR)
        _, refused = await limited.access.create_key(
            "bench", Scope.OPERATOR, rate_limit_per_s=1e-3, rate_limit_burst=1
        )
        await limited.access.admit(refused, "GET", "/api/v1/agents")  # its one token

        async def timed(box: object, key: str, expect_refusal: bool = False) -> list[float]:
            access = box.access  # type: ignore[attr-defined]
            samples = []
            for _ in range(requests):
                t0 = time.perf_counter()
                try:
                    await access.admit(key, "POST", "/api/v1/agents")
                except RateLimited:
                    assert expect_refusal
                samples.append(time.perf_counter() - t0)
            return samples

        cases = {
            "env key, limits off (no database)": await timed(unlimited, "env-key"),
            "env key, with its bucket": await timed(limited, "env-key"),
            "stored key, row + bucket": await timed(limited, stored),
            "stored key, refused 429": await timed(limited, refused, expect_refusal=True),
        }
    finally:
        for box in (limited, unlimited):
            await box.http.aclose()
            await box.engine.dispose()
    print(f"AccessService.admit, {requests} sequential calls per case, local PostgreSQL, 2 cores")
    print(HEADER)
    for label, samples in cases.items():
        print(row(label, samples))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    db = f"sb_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(SERVER, db)
    try:
        upgrade(MIGRATIONS, url)
        with quiet_collector():
            asyncio.run(measure(url, args.requests))
    finally:
        drop_database(SERVER, db)


if __name__ == "__main__":
    main()
