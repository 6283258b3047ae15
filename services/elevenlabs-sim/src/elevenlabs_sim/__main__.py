"""``python -m elevenlabs_sim [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import gc
import sys

import uvicorn

from elevenlabs_sim import openapi
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
    app = create_app(settings)
    openapi.spec()  # parsed once here (cached), so the frozen heap below includes it
    # Like the services (bus.heap): a full collection over the start-up heap stalls every
    # simulated call in flight; the simulator should not be what a benchmark measures. Only when
    # run as its own process: `testing.run_in_thread` must not freeze the caller's heap.
    gc.collect()
    gc.freeze()
    # uvicorn's own access/info logs also go to stderr; keep them at warning to stay quiet.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
