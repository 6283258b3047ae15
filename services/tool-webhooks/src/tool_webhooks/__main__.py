"""`python -m tool_webhooks` serves; `migrate` only migrates; `register-webhook <url>` registers."""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from bus.errors import CommandError
from bus.logs import configure_logging
from bus.tracing import setup_tracing
from tool_webhooks.app import create_app
from tool_webhooks.bootstrap import bootstrap, run_migrations
from tool_webhooks.service import Registration
from tool_webhooks.settings import Settings

USAGE = "usage: python -m tool_webhooks [migrate | register-webhook <public_base_url>]"


async def _register(settings: Settings, public_url: str) -> Registration:
    """The same use case the bus command runs; the event leaves through the outbox once served."""
    box = bootstrap(settings)
    try:
        return await box.service.register_post_call_webhook(public_url)
    finally:
        await box.close()


def main(argv: list[str]) -> int:
    settings = Settings()
    configure_logging("tool-webhooks", settings.log_level, json=settings.log_json)
    setup_tracing("tool-webhooks", settings.otel_traces_exporter)
    if argv[:1] == ["migrate"] and len(argv) == 1:
        run_migrations(settings)
        return 0
    if argv[:1] == ["register-webhook"] and len(argv) == 2:
        run_migrations(settings)
        try:
            registration = asyncio.run(_register(settings, argv[1]))
        except CommandError as exc:
            print(f"registration failed: {exc.status_code} {exc.error}: {exc.detail}", file=sys.stderr)
            return 1
        # Never print the secret: it is stored encrypted and used only to verify deliveries.
        print(f"webhook_id={registration.webhook_id}")
        print(f"webhook_url={registration.webhook_url}")
        print(f"retries_enabled={str(registration.retries_enabled).lower()}")
        return 0
    if argv:
        print(USAGE, file=sys.stderr)
        return 2
    run_migrations(settings)
    app = create_app(bootstrap(settings), migrate=False)
    # uvicorn turns SIGTERM into a graceful shutdown; the lifespan then stops the bus.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, lifespan="on")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
