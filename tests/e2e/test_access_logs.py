"""No signed URL's signature or other secret query value in any service log (issue 12): the
gateway's uvicorn access log and provisioning's httpx request lines carry `sig=REDACTED`."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.conftest import poll, upstream_requests

SECRET = "canary-acce55-log-5ecret"


def _logs(log_dir: Path) -> str:
    return "\n".join(
        p.read_text(errors="replace") for p in log_dir.glob("*.log") if p.name != "elevenlabs-sim.log"
    )


def test_signed_upload_urls_and_secret_query_values_are_redacted(
    api: httpx.Client, sim: httpx.Client, log_dir: Path
) -> None:
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    response = api.post("/api/v1/knowledge-base/file", files={"file": ("signed.pdf", pdf, "application/pdf")})
    assert response.status_code == 200, response.text
    assert upstream_requests(sim, "/v1/convai/knowledge-base/file", "POST")
    # A client's own secret-looking query values are redacted in the access log too.
    api.get("/api/v1/agents", params={"sig": SECRET, "token": SECRET, "api_key": SECRET})
    api.get("/health", params={"consumer_secret": SECRET}, headers={"X-API-Key": SECRET})

    # The gateway logged the upload fetch (the signed URL provisioning followed) and the requests.
    poll(lambda: "/internal/uploads/" in _logs(log_dir) and "consumer_secret=REDACTED" in _logs(log_dir))
    logs = _logs(log_dir)
    assert SECRET not in logs
    assert re.search(r"/internal/uploads/\S+sig=REDACTED", logs)
    assert not re.search(r"sig=(?!REDACTED)[0-9a-f]", logs)
