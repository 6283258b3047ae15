"""/api/v1/webhooks without the notifier: bad input is refused before anything is published, the
signing secret is shown once and stored nowhere in the clear, unknown ids are 404."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devinfra.bus_harness import schema_text
from gateway.app import create_app
from gateway.bootstrap import Container

from .conftest import API_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}
    ) as c:
        yield c


def _body(**fields: Any) -> dict[str, Any]:
    return {"url": "https://hooks.example.com/switchboard", "event_types": ["call.finished"], **fields}


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"url": "http://127.0.0.1:9/hook"}, "scheme 'http' is not allowed"),
        ({"url": "https://127.0.0.1/hook"}, "forbidden address"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "forbidden address"),
        ({"url": "https://[::ffff:10.0.0.1]/hook"}, "forbidden address"),
        ({"url": "https://user:pw@hooks.example.com/"}, "credentials"),
        ({"url": "https://localhost/hook"}, "forbidden address"),
    ],
)
async def test_a_url_the_ssrf_guard_refuses_is_a_422(
    client: httpx.AsyncClient, container: Container, fields: dict[str, Any], detail: str
) -> None:
    before = (await schema_text(container.settings.database_url, "gateway")).count(
        "webhook_subscription.create"
    )
    response = await client.post("/api/v1/webhooks", json=_body(**fields))
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False
    assert response.json()["error"] == "Webhook URL refused"
    assert detail in response.json()["detail"]
    after = (await schema_text(container.settings.database_url, "gateway")).count(
        "webhook_subscription.create"
    )
    assert after == before  # nothing queued


@pytest.mark.parametrize(
    "fields",
    [
        {"event_types": []},
        {"event_types": ["call.started"]},
        {"event_types": "call.finished"},
        {"url": "ftp://hooks.example.com/"},
        {"url": "not a url"},
        {"secret": "mine"},
    ],
)
async def test_a_malformed_subscription_is_a_422(client: httpx.AsyncClient, fields: dict[str, Any]) -> None:
    response = await client.post("/api/v1/webhooks", json=_body(**fields))
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False


async def test_the_secret_is_shown_once_and_stored_only_encrypted(
    client: httpx.AsyncClient, container: Container
) -> None:
    # No notifier answers here, so the write answers 202 with its operation: the secret still comes.
    headers = {"Idempotency-Key": "webhook-create-1"}
    body = _body(url="https://93.184.216.34/hook")  # a public address: no DNS needed here
    first = await client.post("/api/v1/webhooks", json=body, headers=headers)
    assert first.status_code == 202, first.text
    secret = first.json()["signing_secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    replay = await client.post("/api/v1/webhooks", json=body, headers=headers)
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["signing_secret"] is None
    assert replay.json()["operation_id"] == first.json()["operation_id"]
    stored = await schema_text(container.settings.database_url, "gateway")
    assert "webhook_subscription.create" in stored  # the command is queued...
    assert secret not in stored  # ...with the secret only as ciphertext


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/webhooks/whk_missing"),
        ("DELETE", "/api/v1/webhooks/whk_missing"),
        ("POST", "/api/v1/webhooks/whk_missing/enable"),
        ("GET", "/api/v1/webhooks/whk_missing/deliveries"),
        ("POST", "/api/v1/webhooks/whk_missing/deliveries/dlv_missing/resend"),
    ],
)
async def test_unknown_ids_are_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404, response.text
    assert response.json() == {
        "success": False,
        "error": "Webhook not found: whk_missing",
        "detail": "No such resource: it does not exist or was deleted",
    }


async def test_listing_starts_empty_and_filters_are_checked(client: httpx.AsyncClient) -> None:
    listed = await client.get("/api/v1/webhooks", params={"page_size": 5})
    assert listed.status_code == 200 and set(listed.json()) == {"webhooks", "cursor"}
    bad = await client.get("/api/v1/webhooks", params={"page_size": 0})
    assert bad.status_code == 422 and bad.json()["success"] is False
