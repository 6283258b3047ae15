"""Helpers for other packages' tests: run the simulator over real HTTP in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from elevenlabs_sim.app import create_app
from elevenlabs_sim.settings import SimSettings

__all__ = ["free_port", "run_in_thread"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def run_in_thread(settings: SimSettings | None = None, *, startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve the simulator on a free loopback port; yields the base URL, e.g. ``http://127.0.0.1:PORT``.

    ``settings.host``/``settings.port`` are ignored: the point is an isolated instance per test.
    """
    settings = settings or SimSettings()
    host = "127.0.0.1"
    port = free_port(host)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"elevenlabs-sim:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"ElevenLabs simulator did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
