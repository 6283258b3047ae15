"""A customer's webhook endpoint for tests: a real HTTP server on loopback that records every POST
and answers each path from a script (a status with headers, or "hang": no answer for `hang_s`),
then 200. What it received is checked the way a receiver would (signature over the raw body)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"
#: A scripted answer's header that makes the body this many bytes (the header itself is not sent).
BODY_BYTES = "X-Standin-Body-Bytes"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    base_url: str = ""
    hang_s: float = 10.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[Received] = field(default_factory=list)
    scripts: dict[str, list[tuple[int | str, dict[str, str]]]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def url(self, path: str) -> str:
        return self.base_url + path

    def script(self, path: str, *answers: int | str | tuple[int | str, dict[str, str]]) -> None:
        """Answer the next requests to `path` so (`503`, `(503, {"Retry-After": "1"})`, `"hang"`,
        `(500, {BODY_BYTES: "2000000"})`)."""
        with self.lock:
            self.scripts[path] = [a if isinstance(a, tuple) else (a, {}) for a in answers]


@contextmanager
def serve_receiver(hang_s: float = 10.0) -> Iterator[Receiver]:
    receiver = Receiver(hang_s=hang_s)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.received.append(Received(self.path, dict(self.headers.items()), body, time.time()))
                script = receiver.scripts.get(self.path)
                answer, headers = script.pop(0) if script else (200, {})
            if answer == HANG:
                receiver.release.wait(receiver.hang_s)  # longer than the sender waits
                return
            payload = json.dumps({"received": True, "status": answer}).encode()
            headers = dict(headers)
            if (size := headers.pop(BODY_BYTES, None)) is not None:
                payload = payload.ljust(int(size))
            self.send_response(int(answer))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
