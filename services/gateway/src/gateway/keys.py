"""`python -m gateway.keys`: create, list and revoke API keys from a shell, e.g. the first admin key
of a deployment (then manage the others over REST, `/api/v1/api-keys`).

    python -m gateway.keys create --name NAME --scope read|operator|admin [--rate-limit-per-s R] [--rate-limit-burst B]
    python -m gateway.keys list
    python -m gateway.keys revoke KEY_ID

Uses the gateway's settings (DATABASE_URL) and migrates its schema first. `create` prints the key
alone on stdout (so `KEY=$(python -m gateway.keys create ...)` works) and the rest on stderr: the
key is shown this once, only its SHA-256 is stored. Exit status 1: no such key (revoke).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path

from bus.logs import configure_logging
from bus.migrate import upgrade
from gateway.access import KEY_PREFIX, Scope
from gateway.bootstrap import bootstrap
from gateway.errors import NotFound
from gateway.models import ApiKey
from gateway.schemas import MAX_RATE_LIMIT_BURST
from gateway.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gateway.keys", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--scope", required=True, choices=[s.value for s in Scope])
    create.add_argument(
        "--rate-limit-per-s",
        type=float,
        help="requests per second on average (0: unlimited; default: settings)",
    )
    create.add_argument("--rate-limit-burst", type=int, help="requests at once (default: settings)")
    commands.add_parser("list", help="list stored keys (never their secret)")
    revoke = commands.add_parser("revoke", help="revoke a key at once, on every gateway replica")
    revoke.add_argument("key_id", help="the key's id (the hex digits after sb_live_)")
    return parser


def _line(row: ApiKey) -> str:
    def at(value: datetime | None) -> str:
        return value.isoformat(timespec="seconds") if value is not None else "-"

    return "\t".join(
        [
            f"{KEY_PREFIX}{row.key_id}",
            row.scope,
            row.name,
            f"created {at(row.created_at)}",
            f"last used {at(row.last_used_at)}",
            f"revoked {at(row.revoked_at)}" if row.revoked_at else "active",
        ]
    )


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    container = bootstrap(settings)
    access = container.access
    try:
        if args.command == "create":
            name = args.name.strip()
            if not name:
                print("--name must not be blank", file=sys.stderr)
                return 2
            if (args.rate_limit_per_s or 0) < 0 or (
                args.rate_limit_burst is not None and not 1 <= args.rate_limit_burst <= MAX_RATE_LIMIT_BURST
            ):
                print(
                    f"--rate-limit-per-s must be >= 0 and --rate-limit-burst 1-{MAX_RATE_LIMIT_BURST}",
                    file=sys.stderr,
                )
                return 2
            row, api_key = await access.create_key(
                name,
                Scope(args.scope),
                rate_limit_per_s=args.rate_limit_per_s,
                rate_limit_burst=args.rate_limit_burst,
            )
            print(f"created {_line(row)}; the key follows, shown this once:", file=sys.stderr)
            print(api_key)
        elif args.command == "list":
            for row in await access.keys():
                print(_line(row))
        else:
            try:
                row = await access.revoke_key(args.key_id.removeprefix(KEY_PREFIX))
            except NotFound:
                print(f"no API key {args.key_id}", file=sys.stderr)
                return 1
            print(_line(row))
        return 0
    finally:
        await container.http.aclose()
        await container.engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    configure_logging("gateway.keys", settings.log_level, json=settings.log_json)  # on stderr
    upgrade(MIGRATIONS, settings.database_url)
    return asyncio.run(_run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
