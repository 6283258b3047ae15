"""`python -m telephony` serves; `python -m telephony migrate` only migrates."""

from __future__ import annotations

import sys

from bus.serving import serve
from telephony.app import create_app
from telephony.bootstrap import bootstrap, run_migrations
from telephony.settings import Settings


def main(argv: list[str]) -> int:
    return serve(
        "telephony",
        argv,
        Settings(),
        migrate=run_migrations,
        app=lambda settings: create_app(bootstrap(settings), migrate=False),
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
