"""`python -m campaigns` serves; `python -m campaigns migrate` only migrates."""

from __future__ import annotations

import sys

from bus.serving import serve
from campaigns.app import create_app
from campaigns.bootstrap import bootstrap, run_migrations
from campaigns.settings import Settings


def main(argv: list[str]) -> int:
    return serve(
        "campaigns",
        argv,
        Settings(),
        migrate=run_migrations,
        app=lambda settings: create_app(bootstrap(settings), migrate=False),
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
