"""`python -m notifier` serves; `python -m notifier migrate` only migrates."""

from __future__ import annotations

import sys

import uvicorn

from bus.logs import configure_logging
from bus.tracing import setup_tracing
from notifier.app import create_app
from notifier.bootstrap import bootstrap, run_migrations
from notifier.settings import Settings


def main(argv: list[str]) -> int:
    settings = Settings()
    configure_logging("notifier", settings.log_level, json=settings.log_json)
    setup_tracing("notifier", settings.otel_traces_exporter)
    if argv[:1] == ["migrate"]:
        run_migrations(settings)
        return 0
    if argv:
        print("usage: python -m notifier [migrate]", file=sys.stderr)
        return 2
    run_migrations(settings)
    app = create_app(bootstrap(settings), migrate=False)
    # uvicorn turns SIGTERM into a graceful shutdown; the lifespan then stops the bus, which lets
    # in-flight handlers finish before offsets are committed.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, lifespan="on")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
