"""Provisioning fetches only the gateway's own signed upload URLs (issue 12, "Limits before work").

A command is published straight onto the provisioning commands topic, as anyone with access to the
bus could: a `file_url` that is not a live upload URL the gateway signed fails the command, and
nothing is fetched.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from bus.secrets import sign_upload, upload_url
from contracts.provisioning import CreateKnowledgeDocument

from .conftest import KEYRING, Harness, signed_upload_url

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def secret_server() -> Iterator[tuple[str, list[str]]]:
    """An internal service that must never be asked: serves a secret, records every request."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = b"TOP SECRET: internal credentials"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()


def _file(url: str) -> CreateKnowledgeDocument:
    return CreateKnowledgeDocument(
        source_type="file",
        name=f"ssrf-{uuid.uuid4().hex[:8]}",
        file_url=url,
        file_name="notes.txt",
        file_content_type="text/plain",
        correlation_id=uuid.uuid4().hex,
    )


def _assert_refused(event: dict[str, Any]) -> None:
    assert event["type"] == "command.failed", event
    assert (event["status_code"], event["error"]) == (422, "Upload URL refused"), event


@pytest.mark.parametrize(
    "shape",
    [
        "plain",  # the example
        "signed-path",  # a correctly signed upload path, on another origin
        "other-scheme",
        "userinfo",
    ],
)
async def test_a_file_url_outside_the_gateway_is_refused_and_never_fetched(
    harness: Harness,
    secret_server: tuple[str, list[str]],
    file_server: tuple[str, dict[str, bytes]],
    file_server_hits: list[str],
    shape: str,
) -> None:
    """Before: provisioning fetched any file_url and stored what it got on ElevenLabs."""
    secret, hits = secret_server
    gateway = urlsplit(file_server[0])
    url = {
        "plain": f"{secret}/secret",
        "signed-path": signed_upload_url(secret, "doc1"),
        "other-scheme": signed_upload_url(f"https://{gateway.netloc}", "doc1"),
        "userinfo": signed_upload_url(f"http://user@{secret.removeprefix('http://')}", "doc1"),
    }[shape]
    before = len(file_server_hits)
    await harness.sim.delete("/_sim/requests")

    event = await harness.one(_file(url))

    _assert_refused(event)
    assert "not the gateway's origin" in event["detail"]
    assert hits == []  # the internal server was never asked
    assert len(file_server_hits) == before
    assert await harness.requests("POST", "/v1/convai/knowledge-base/file") == []  # nothing stored upstream


@pytest.mark.parametrize(
    "shape", ["expired", "tampered-sig", "other-upload", "later-expiry", "no-sig", "extra"]
)
async def test_an_expired_or_tampered_upload_url_is_refused_and_never_fetched(
    harness: Harness, file_server: tuple[str, dict[str, bytes]], file_server_hits: list[str], shape: str
) -> None:
    base, files = file_server
    files["/internal/uploads/real"] = files["/internal/uploads/other"] = b"Opening hours: 9-5.\n"
    expires = int(time.time()) + 3600
    sig = sign_upload(KEYRING, "real", expires)
    url = {
        "expired": upload_url(base, KEYRING, "real", int(time.time()) - 5),
        "tampered-sig": f"{base}/internal/uploads/real?expires={expires}&sig={'0' * len(sig)}",
        "other-upload": f"{base}/internal/uploads/other?expires={expires}&sig={sig}",
        "later-expiry": f"{base}/internal/uploads/real?expires={expires + 86400}&sig={sig}",
        "no-sig": f"{base}/internal/uploads/real?expires={expires}",
        "extra": f"{base}/internal/uploads/real?expires={expires}&sig={sig}&sig=x",
    }[shape]
    before = len(file_server_hits)

    event = await harness.one(_file(url))

    _assert_refused(event)
    assert len(file_server_hits) == before


async def test_a_valid_signed_upload_url_is_fetched(
    harness: Harness, file_server: tuple[str, dict[str, bytes]], file_server_hits: list[str]
) -> None:
    base, files = file_server
    files["/internal/uploads/valid"] = b"Opening hours: 9-5.\n"

    event = await harness.one(_file(signed_upload_url(base, "valid")))

    assert event["type"] == "knowledge_document.created", event
    assert file_server_hits[-1].startswith("/internal/uploads/valid?expires=")
