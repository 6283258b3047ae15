"""`python -m gateway` serves the API (after migrating); `python -m gateway migrate` only migrates."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from bus.logs import configure_logging
from bus.migrate import upgrade
from bus.tracing import setup_tracing
from gateway.app import create_app
from gateway.bootstrap import bootstrap
from gateway.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_level, json=settings.log_json)
    setup_tracing("gateway", settings.otel_traces_exporter)
    upgrade(MIGRATIONS, settings.database_url)
    if sys.argv[1:2] == ["migrate"]:
        return
    app = create_app(bootstrap(settings))
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
