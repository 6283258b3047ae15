"""``python -m elevenlabs_sim [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from elevenlabs_sim.app import create_app
from elevenlabs_sim.settings import SimSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="elevenlabs_sim", description="Local ElevenLabs API simulator")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
    settings = SimSettings(**overrides)
    print(
        f"ElevenLabs simulator listening on http://{settings.host}:{settings.port}",
        file=sys.stderr,
        flush=True,
    )
    # uvicorn's own access/info logs also go to stderr; keep them at warning to stay quiet.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
