"""What a short transaction costs with each way of checking pooled connections (issue 17).

Every handler, relay fetch and request opens a transaction on a pooled connection. SQLAlchemy's
``pool_pre_ping`` pings the connection at every checkout, and asyncpg's ping is three round trips
(BEGIN, ``;``, ROLLBACK). `bus.db.make_engine` pings only a connection that sat idle for
`bus.db.PING_AFTER_IDLE_S`. N transactions of one ``SELECT 1`` each, back to back, alternating the
two engines; printed per transaction: this process's CPU (`time.process_time`), PostgreSQL's (every
server process, from /proc) and wall time.

    uv run python bench/pool_checkout.py [--transactions 3000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _harness import SERVER, postgres_seconds
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bus.db import make_engine


async def measure(label: str, engine: AsyncEngine, transactions: int) -> None:
    async with engine.begin() as connection:  # the pool's first connection, outside the figures
        await connection.execute(text("SELECT 1"))
    pg_before, cpu_before, wall_before = postgres_seconds(), time.process_time(), time.perf_counter()
    for _ in range(transactions):
        async with engine.begin() as connection:
            await connection.execute(text("SELECT 1"))
    cpu, pg, wall = (
        time.process_time() - cpu_before,
        postgres_seconds() - pg_before,
        time.perf_counter() - wall_before,
    )
    await engine.dispose()
    per = 1e6 / transactions
    print(
        f"  {label:34} client CPU {cpu * per:5.0f} us   PostgreSQL {pg * per:5.0f} us   wall {wall * per:5.0f} us"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transactions", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{args.transactions} transactions of one SELECT 1 each, per transaction:")
    for _ in range(args.rounds):
        await measure(
            "pool_pre_ping (every checkout)",
            create_async_engine(SERVER, pool_size=5, pool_pre_ping=True, hide_parameters=True),
            args.transactions,
        )
        await measure(
            "make_engine (idle connections only)", make_engine(SERVER, pool_size=5), args.transactions
        )


if __name__ == "__main__":
    asyncio.run(main())
