"""Request bodies take the JSON types the OpenAPI document declares, never coerced ones.

Found by schemathesis (negative data accepted): `"required": 0` created a webhook tool whose
parameter was optional, although the document says a boolean."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.bootstrap import Container

from .conftest import API_KEY

pytestmark = pytest.mark.integration

TOOL = {"name": "t", "description": "d", "webhook_url": "https://api.example.com/hook"}
BATCH = {
    "call_name": "c",
    "agent_id": "a",
    "phone_number_id": "p",
    "recipients": [{"phone_number": "+14155552671"}],
}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/tools/webhook", TOOL | {"parameters": [{"name": "p", "required": 0}]}, "required"),
        ("/api/v1/tools/webhook", TOOL | {"parameters": [{"name": "p", "required": "yes"}]}, "required"),
        ("/api/v1/batch-calling/submit", BATCH | {"retry_count": "2"}, "retry_count"),
        ("/api/v1/batch-calling/submit", BATCH | {"scheduled_time_unix": 1.5e9}, "scheduled_time_unix"),
        ("/api/v1/phone-numbers/sip-trunk", {"supports_inbound": 1}, "supports_inbound"),
        ("/api/v1/agents", {"name": 7}, "name"),
    ],
)
async def test_a_value_of_another_json_type_is_a_422(
    container: Container, path: str, body: dict[str, Any], field: str
) -> None:
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(path, json=body, headers={"X-API-Key": API_KEY})
    assert response.status_code == 422, response.text
    assert response.json()["success"] is False and field in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/v1/agents", "/api/v1/tools/webhook", "/api/v1/batch-calling/submit"])
async def test_a_body_nested_past_any_parser_limit_is_a_client_error(container: Container, path: str) -> None:
    depth = 100_000  # past the interpreter's recursion limit and the batch reader's MAX_DEPTH
    body = b'{"name": ' + b"[" * depth + b"]" * depth + b"}"
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.post(
            path, content=body, headers={"X-API-Key": API_KEY, "Content-Type": "application/json"}
        )
    assert response.status_code in (400, 422), response.text
    assert response.json()["success"] is False and response.json()["detail"]
