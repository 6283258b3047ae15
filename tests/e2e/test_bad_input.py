"""Client mistakes get the right 4xx in the contract's format and cause nothing upstream."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import upstream_requests


def _assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    assert set(body) <= {"success", "error", "detail"}
    assert "Traceback" not in response.text
    return body


@pytest.fixture
def upstream_untouched(sim: httpx.Client):  # type: ignore[no-untyped-def]
    before = len(upstream_requests(sim))
    yield
    # Only our own GET /health probe may reach upstream.
    after = [
        r for r in upstream_requests(sim)[before:] if r["path"] != "/v1/convai/agents" or r["method"] != "GET"
    ]
    assert after == []


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/tools/ecommerce", {}),
        ("post", "/api/v1/tools/ecommerce", {"webhook_base_url": 42}),
        ("post", "/api/v1/tools/ecommerce", {"webhook_base_url": "ftp://x"}),
        ("post", "/api/v1/tools/webhook", {"name": "x"}),
        (
            "post",
            "/api/v1/tools/webhook",
            {"name": "bad name!", "description": "d", "webhook_url": "https://a.b/c"},
        ),
        (
            "post",
            "/api/v1/tools/webhook",
            {
                "name": "n",
                "description": "d",
                "webhook_url": "https://a.b/c",
                "parameters": [{"name": "p", "type": "date"}],
            },
        ),
        ("post", "/api/v1/knowledge-base/text", {"name": "no text"}),
        ("post", "/api/v1/knowledge-base/text", {"text": ["not", "a", "string"]}),
        ("post", "/api/v1/knowledge-base/url", {"url": "not a url"}),
        ("post", "/api/v1/agents", {"language": "en"}),
        ("post", "/api/v1/agents", {"name": "A", "tool_ids": "tool_1"}),
        ("post", "/api/v1/agents", {"name": "A", "conversation_config": "nope"}),
    ],
)
def test_invalid_bodies_are_422(api: httpx.Client, method: str, path: str, body: dict[str, Any]) -> None:
    body_out = _assert_error(api.request(method, path, json=body), 422)
    assert body_out["error"] == "Validation error" and body_out["detail"]


@pytest.mark.usefixtures("upstream_untouched")
def test_malformed_json_is_422(api: httpx.Client) -> None:
    _assert_error(
        api.post("/api/v1/agents", content=b"{not json", headers={"Content-Type": "application/json"}), 422
    )


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("get", "/api/v1/agents/agent_missing", "Agent not found: agent_missing"),
        ("patch", "/api/v1/agents/agent_missing/prompt", "Agent not found: agent_missing"),
        ("delete", "/api/v1/agents/agent_missing", "Agent not found: agent_missing"),
        ("get", "/api/v1/tools/tool_missing", "Tool not found: tool_missing"),
        ("delete", "/api/v1/tools/tool_missing", "Tool not found: tool_missing"),
        ("get", "/api/v1/knowledge-base/doc_missing", "Document not found: doc_missing"),
        ("delete", "/api/v1/knowledge-base/doc_missing", "Document not found: doc_missing"),
        ("get", "/api/v1/operations/op_missing", "Operation not found: op_missing"),
    ],
)
def test_unknown_ids_are_404(api: httpx.Client, method: str, path: str, error: str) -> None:
    kwargs: dict[str, Any] = {"json": {"first_message": "x"}} if method == "patch" else {}
    assert _assert_error(api.request(method, path, **kwargs), 404)["error"] == error


@pytest.mark.usefixtures("upstream_untouched")
def test_agent_referencing_unknown_tools_is_404(api: httpx.Client) -> None:
    response = api.post("/api/v1/agents", json={"name": "A", "tool_ids": ["tool_nope"]})
    assert _assert_error(response, 404)["error"] == "Tool not found: tool_nope"


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize("page_size", [0, 101, -1, "many"])
@pytest.mark.parametrize("resource", ["tools", "knowledge-base", "agents"])
def test_page_size_out_of_range_is_422(api: httpx.Client, resource: str, page_size: object) -> None:
    _assert_error(api.get(f"/api/v1/{resource}", params={"page_size": page_size}), 422)


@pytest.mark.usefixtures("upstream_untouched")
def test_garbage_cursor_is_400(api: httpx.Client) -> None:
    _assert_error(api.get("/api/v1/agents", params={"cursor": "!!!"}), 400)


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize(
    ("file_name", "content", "status"),
    [
        ("virus.exe", b"MZ\x90\x00binary", 415),
        ("fake.pdf", b"MZ\x90\x00not a pdf", 415),
        ("fake.docx", b"PK\x03\x04not a zip", 415),
        ("binary.txt", b"\x00\x01\x02\xff", 415),
        ("empty.txt", b"", 400),
        ("big.txt", b"a" * (64 * 1024 + 1), 413),
    ],
)
def test_bad_uploads_are_refused(api: httpx.Client, file_name: str, content: bytes, status: int) -> None:
    _assert_error(api.post("/api/v1/knowledge-base/file", files={"file": (file_name, content)}), status)


@pytest.mark.usefixtures("upstream_untouched")
def test_upload_without_file_is_422(api: httpx.Client) -> None:
    _assert_error(api.post("/api/v1/knowledge-base/file", data={"name": "x"}), 422)
    _assert_error(api.post("/api/v1/knowledge-base/ingest", data={"source_type": "file"}), 422)
    _assert_error(api.post("/api/v1/knowledge-base/ingest", data={"source_type": "video"}), 422)


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic e2Uta2V5"}],
)
def test_missing_or_wrong_api_key_is_401(api: httpx.Client, headers: dict[str, str]) -> None:
    response = httpx.post(f"{api.base_url}/api/v1/agents", json={"name": "A"}, headers=headers)
    body = _assert_error(response, 401)
    assert body["error"] == "Authentication failed"


def test_bearer_and_second_key_work(api: httpx.Client) -> None:
    response = httpx.get(f"{api.base_url}/api/v1/agents", headers={"Authorization": "Bearer second-key"})
    assert response.status_code == 200


def test_unknown_route_is_404_in_contract_format(api: httpx.Client) -> None:
    _assert_error(api.get("/api/v1/nothing-here"), 404)
