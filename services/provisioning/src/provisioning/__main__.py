"""`python -m provisioning` serves; `python -m provisioning migrate` only migrates."""

from __future__ import annotations

import sys

import uvicorn

from bus.logs import configure_logging
from bus.tracing import setup_tracing
from provisioning.app import create_app
from provisioning.bootstrap import bootstrap, run_migrations
from provisioning.settings import Settings


def main(argv: list[str]) -> int:
    settings = Settings()
    configure_logging("provisioning", settings.log_level, json=settings.log_json)
    setup_tracing("provisioning", settings.otel_traces_exporter)
    if argv[:1] == ["migrate"]:
        run_migrations(settings)
        return 0
    if argv:
        print("usage: python -m provisioning [migrate]", file=sys.stderr)
        return 2
    run_migrations(settings)
    app = create_app(bootstrap(settings), migrate=False)
    # uvicorn turns SIGTERM into a graceful shutdown; the lifespan then stops the bus, which lets
    # in-flight handlers finish before offsets are committed.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, lifespan="on")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
