"""Every error the gateway answers, whatever answers it (a route, FastAPI or Starlette, the request
guard, the idempotency middleware), is `{"success": false, "error": str, "detail": ...}` with a
non-empty `detail` (README "API documentation"; api-v1.md 12). One request per status and source."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from contracts.base import CommandFailed
from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.domain import outcome_of
from gateway.errors import Conflict

from .conftest import API_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}, timeout=60
    ) as client:
        yield client


def assert_error_layout(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["success", "error", "detail"], body
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    assert body["detail"], body
    return body


async def test_a_route_that_does_not_exist_is_a_404_in_the_format(api: httpx.AsyncClient) -> None:
    body = assert_error_layout(await api.get("/api/v1/no-such-thing"), 404)
    assert body["error"] == "Not found" and "/api/v1/no-such-thing" in body["detail"]
    assert_error_layout(await api.get("/no-such-page"), 404)


async def test_a_trailing_slash_serves_the_same_resource_never_an_empty_redirect(
    api: httpx.AsyncClient,
) -> None:
    for path in ("/api/v1/agents", "/api/v1/tools", "/api/v1/batch-calling", "/api/v1/webhooks"):
        plain, slashed = await api.get(path), await api.get(path + "/")
        assert slashed.status_code == plain.status_code == 200, (path, slashed.status_code, slashed.text)
        assert slashed.json().keys() == plain.json().keys()
    # A resource by id, a write, and an unknown one answer as without the slash.
    body = assert_error_layout(await api.get("/api/v1/agents/agent_missing/"), 404)
    assert body["error"] == "Agent not found: agent_missing"
    assert_error_layout(await api.post("/api/v1/agents/", json={"name": ""}), 422)
    assert_error_layout(await api.get("/api/v1/no-such-thing/"), 404)
    assert_error_layout(await api.get("/api/v1/"), 404)


async def test_a_blank_name_is_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    body = assert_error_layout(await api.post("/api/v1/agents", json={"name": "   "}), 422)
    assert "name" in str(body["detail"]) and "blank" in str(body["detail"])


async def test_a_method_the_path_does_not_take_is_a_405_in_the_format(api: httpx.AsyncClient) -> None:
    response = await api.put("/api/v1/agents")
    body = assert_error_layout(response, 405)
    assert body["error"] == "Method not allowed" and "GET, POST" in body["detail"]
    assert response.headers["allow"] == "GET, POST"


async def test_an_unknown_resource_is_a_404_with_a_detail(api: httpx.AsyncClient) -> None:
    body = assert_error_layout(await api.get("/api/v1/agents/agent_missing"), 404)
    assert body["error"] == "Agent not found: agent_missing"
    assert_error_layout(await api.get("/api/v1/batch-calling/batch_missing"), 404)
    assert_error_layout(await api.get("/api/v1/operations/op_missing"), 404)


async def test_no_key_is_a_401_and_a_low_scope_a_403_in_the_format(
    api: httpx.AsyncClient, container: Container
) -> None:
    body = assert_error_layout(await api.get("/api/v1/agents", headers={"X-API-Key": ""}), 401)
    assert body["error"] == "Authentication failed"
    assert_error_layout(await api.get("/api/v1/agents", headers={"X-API-Key": "nope"}), 401)
    _, reader = await container.access.create_key("layout reader", "read")
    body = assert_error_layout(
        await api.post("/api/v1/agents", json={"name": "x"}, headers={"X-API-Key": reader}), 403
    )
    assert body["error"] == "Insufficient scope"


async def test_a_body_over_the_cap_is_a_413_in_the_format(
    api: httpx.AsyncClient, container: Container
) -> None:
    too_big = b"x" * (container.settings.max_body_bytes + 1)
    body = assert_error_layout(
        await api.post("/api/v1/agents", content=too_big, headers={"Content-Type": "application/json"}), 413
    )
    assert body["error"] == "Payload too large"

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(container.settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536

    assert_error_layout(
        await api.post("/api/v1/agents", content=streamed(), headers={"Content-Type": "application/json"}),
        413,
    )


async def test_a_command_its_service_refused_without_a_detail_still_has_one(api: httpx.AsyncClient) -> None:
    # The campaigns service refuses cancelling a finished campaign with 409 "Campaign is completed"
    # and no detail; the operation's answer (and the route's, had it waited) gets the general one.
    refused = CommandFailed(command_type="campaign.cancel", status_code=409, error="Campaign is completed")
    outcome = outcome_of(refused, "campaign.cancel")
    assert outcome.status_code == 409
    assert list(outcome.body) == ["success", "error", "detail"] and outcome.body["detail"]
    assert Conflict("Campaign is completed").body()["detail"]


async def test_a_body_that_is_not_json_is_a_422_in_the_format(api: httpx.AsyncClient) -> None:
    assert_error_layout(
        await api.post("/api/v1/agents", content=b"{", headers={"Content-Type": "application/json"}), 422
    )
