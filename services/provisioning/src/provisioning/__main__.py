"""`python -m provisioning` serves; `python -m provisioning migrate` only migrates."""

from __future__ import annotations

import sys

from bus.serving import serve
from provisioning.app import create_app
from provisioning.bootstrap import bootstrap, run_migrations
from provisioning.settings import Settings


def main(argv: list[str]) -> int:
    return serve(
        "provisioning",
        argv,
        Settings(),
        migrate=run_migrations,
        app=lambda settings: create_app(bootstrap(settings), migrate=False),
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
