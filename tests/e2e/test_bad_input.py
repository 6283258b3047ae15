"""Client mistakes get the right 4xx in the contract's format and cause nothing upstream."""

from __future__ import annotations

import base64
import io
import struct
import zipfile
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


LIST_ROUTES = [
    "agents",
    "tools",
    "knowledge-base",
    "phone-numbers",
    "calls",
    "emails",
    "email-templates",
    "email-templates/sessions",
    "batch-calling",
    "do-not-call",
]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize(
    "cursor",
    [
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk",  # the example: 99999999999999999999, beyond bigint
        _b64(str(2**63)),
        _b64("9" * 5000),
        _b64("-1"),
        _b64("+5"),
        _b64(" 7 "),
        _b64("1_000"),
        _b64("1.5"),
        _b64("abc"),
        _b64("٣"),  # a Unicode digit int() would accept
        "!!!",
        "a",
        "%00",
        "x" * 10_000,
    ],
)
def test_every_bad_cursor_is_400(api: httpx.Client, cursor: str) -> None:
    for resource in LIST_ROUTES:
        _assert_error(api.get(f"/api/v1/{resource}", params={"cursor": cursor}), 400)


@pytest.mark.usefixtures("upstream_untouched")
def test_bad_cursor_on_a_job_s_calls_is_4xx(api: httpx.Client) -> None:
    response = api.get(
        "/api/v1/batch-calling/job_nope/calls", params={"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk"}
    )
    assert response.status_code in (400, 404)
    _assert_error(response, response.status_code)


def test_a_valid_cursor_still_pages(api: httpx.Client) -> None:
    """Pages run newest first (a cursor names the position the next page starts below): the biggest
    position a cursor can name is fine (the newest rows), position 1 leaves nothing below it, and
    another list's cursor is fine too."""
    page = api.get("/api/v1/agents", params={"cursor": _b64(str(2**63 - 1))})
    assert page.status_code == 200, page.text
    assert isinstance(page.json()["agents"], list)
    bottom = api.get("/api/v1/agents", params={"cursor": _b64("1")})
    assert bottom.status_code == 200, bottom.text
    assert bottom.json()["agents"] == []
    assert api.get("/api/v1/tools", params={"cursor": _b64("1")}).status_code == 200


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize("page_size", [0, -5, 10**9, 10**30, "1e3", ""])
def test_every_list_route_refuses_bad_page_sizes(api: httpx.Client, page_size: object) -> None:
    for resource in LIST_ROUTES:
        _assert_error(api.get(f"/api/v1/{resource}", params={"page_size": page_size}), 422)


BAD_URLS = [
    "ftp://x",
    "ftp://example.com/file.txt",
    "file:///etc/passwd",
    "javascript:alert(1)//",
    "http://",
    "https:///path/only",
    "http://:80/x",
    "https://exa mple.com/x",
    "https://example.com/\r\nx",
    "https://example.com:99999/x",
    "https://example.com:port/x",
    "https://" + "a" * 64 + ".example.com/",  # a DNS label longer than 63
    "https://example.com/" + "a" * 10_000,
    "https://xn--a.example/",  # an invalid punycode label
    "https://\u2060.example/",  # an IDN that cannot be encoded
]


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize("url", BAD_URLS)
def test_every_url_field_refuses_bad_urls(api: httpx.Client, url: str) -> None:
    _assert_error(api.post("/api/v1/knowledge-base/ingest", data={"source_type": "url", "url": url}), 422)
    _assert_error(api.post("/api/v1/knowledge-base/url", json={"url": url}), 422)
    _assert_error(api.post("/api/v1/tools/ecommerce", json={"webhook_base_url": url}), 422)
    tool = {"name": "n", "description": "d", "webhook_url": url}
    _assert_error(api.post("/api/v1/tools/webhook", json=tool), 422)


@pytest.mark.usefixtures("upstream_untouched")
def test_ingest_form_values_are_validated_like_json_bodies(api: httpx.Client) -> None:
    name = "n" * 1001
    _assert_error(
        api.post("/api/v1/knowledge-base/ingest", data={"source_type": "text", "text": "t", "name": name}),
        422,
    )
    _assert_error(
        api.post(
            "/api/v1/knowledge-base/ingest",
            data={"source_type": "url", "url": "https://a.example/", "name": name},
        ),
        422,
    )


def _zip(entries: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytearray:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return bytearray(buffer.getvalue())


def _docx() -> bytearray:
    return _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"})


def _central_directory(data: bytearray) -> list[int]:
    offsets, at = [], data.find(b"PK\x01\x02")
    while at != -1:
        offsets.append(at)
        at = data.find(b"PK\x01\x02", at + 4)
    return offsets


def _unsupported_version() -> bytes:
    """The issue's example: the directory declares it needs zip version 9.9 (zipfile raises
    NotImplementedError)."""
    data = _docx()
    for at in _central_directory(data):
        struct.pack_into("<H", data, at + 6, 99)  # version needed to extract
    return bytes(data)


def _unsupported_compression() -> bytes:
    data = _docx()
    for at in _central_directory(data):
        struct.pack_into("<H", data, at + 10, 99)  # compression method 99 (AES)
    return bytes(data)


def _encrypted() -> bytes:
    data = _docx()
    for at in _central_directory(data):
        flags = struct.unpack_from("<H", data, at + 8)[0]
        struct.pack_into("<H", data, at + 8, flags | 0x1)
    return bytes(data)


def _bomb() -> bytes:
    """A declared uncompressed size of 4 GB for a few bytes."""
    data = _docx()
    for at in _central_directory(data):
        struct.pack_into("<I", data, at + 24, 0xFFFFFFFE)
    return bytes(data)


@pytest.mark.usefixtures("upstream_untouched")
@pytest.mark.parametrize(
    ("file_name", "content"),
    [
        ("version.docx", _unsupported_version()),
        ("method.docx", _unsupported_compression()),
        ("encrypted.docx", _encrypted()),
        ("bomb.docx", _bomb()),
        ("truncated.docx", bytes(_docx()[:60])),
        ("no-document.docx", bytes(_zip({"a.txt": b"x"}))),
        ("directory-cut.docx", bytes(_docx()[:-10])),
        ("truncated.pdf", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog"),
        ("header-only.pdf", b"%PDF-"),
    ],
)
def test_broken_archives_and_documents_are_415(api: httpx.Client, file_name: str, content: bytes) -> None:
    for path, data in (("file", {}), ("ingest", {"source_type": "file"})):
        response = api.post(f"/api/v1/knowledge-base/{path}", data=data, files={"file": (file_name, content)})
        _assert_error(response, 415)
