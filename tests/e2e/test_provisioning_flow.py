"""Sections 1, 3, 4, 6 and 7 of api-v1.md through the REST API over the whole stack."""

from __future__ import annotations

import io
import zipfile

import httpx
import pytest

from tests.e2e.conftest import upstream_requests


def test_health_reports_upstream_reachable(api: httpx.Client) -> None:
    response = httpx.get(f"{api.base_url}/health")  # open: no API key
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "api_accessible": True, "version": "1.0.0"}


def test_docs_are_open(api: httpx.Client) -> None:
    assert httpx.get(f"{api.base_url}/docs").status_code == 200
    events = httpx.get(f"{api.base_url}/docs/events.json").json()
    assert "switchboard.provisioning.commands" in str(events["channels"])


def test_ecommerce_tools_are_created_and_listed(api: httpx.Client, sim: httpx.Client) -> None:
    response = api.post(
        "/api/v1/tools/ecommerce", json={"webhook_base_url": "https://shop.example.com/api/v1"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"products_tool_id", "orders_tool_id"}

    # Read-your-writes: the list shows them right after the write answered.
    listed = {t["tool_id"]: t for t in api.get("/api/v1/tools", params={"page_size": 100}).json()["tools"]}
    assert listed[body["products_tool_id"]] == {
        "tool_id": body["products_tool_id"],
        "name": "get_products",
        "type": "webhook",
    }
    assert listed[body["orders_tool_id"]]["name"] == "get_orders"

    created = upstream_requests(sim, "/v1/convai/tools", "POST")
    urls = {r["json"]["tool_config"]["api_schema"]["url"] for r in created}
    assert "https://shop.example.com/api/v1/webhook/ecommerce/products" in urls
    products = next(r for r in created if r["json"]["tool_config"]["name"] == "get_products")
    schema = products["json"]["tool_config"]["api_schema"]
    assert schema["request_body_schema"]["properties"]["conversation_id"]["dynamic_variable"] == (
        "system__conversation_id"
    )
    # The secret header is a workspace secret reference, never a clear value in the tool config.
    assert all(isinstance(v, dict) and "secret_id" in v for v in schema["request_headers"].values())


def test_webhook_tool_lifecycle(api: httpx.Client) -> None:
    body = {
        "name": "check_inventory",
        "description": "Check product inventory.",
        "webhook_url": "https://inventory.example.com/api/v1/webhook/inventory",
        "http_method": "POST",
        "parameters": [
            {"name": "product_id", "type": "string", "description": "The product ID", "required": True},
            {"name": "location", "type": "string", "description": "Warehouse", "required": False},
        ],
    }
    created = api.post("/api/v1/tools/webhook", json=body)
    assert created.status_code == 200, created.text
    tool = created.json()
    assert tool["name"] == "check_inventory" and tool["type"] == "webhook"
    assert tool["description"] == "Check product inventory."

    detail = api.get(f"/api/v1/tools/{tool['tool_id']}")
    assert detail.status_code == 200
    assert detail.json()["tool_config"]["api_schema"]["url"] == body["webhook_url"]

    deleted = api.delete(f"/api/v1/tools/{tool['tool_id']}")
    assert deleted.json() == {"success": True, "message": f"Tool {tool['tool_id']} deleted successfully"}
    assert api.get(f"/api/v1/tools/{tool['tool_id']}").status_code == 404


def test_tool_list_pages_without_gaps_or_repeats(api: httpx.Client) -> None:
    made = set()
    for i in range(7):
        response = api.post(
            "/api/v1/tools/webhook",
            json={"name": f"paged_{i}", "description": "d", "webhook_url": "https://a.example.com/hook"},
        )
        made.add(response.json()["tool_id"])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"page_size": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/tools", params=params).json()
        assert len(page["tools"]) <= 3
        seen += [t["tool_id"] for t in page["tools"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert made <= set(seen)


def test_knowledge_base_text_url_and_listing(api: httpx.Client) -> None:
    text = api.post("/api/v1/knowledge-base/text", json={"text": "Q: hours? A: 9-6", "name": "Company FAQ"})
    assert text.status_code == 200, text.text
    doc = text.json()
    assert doc["document_id"] == doc["id"]
    assert doc == {
        "document_id": doc["id"],
        "id": doc["id"],
        "name": "Company FAQ",
        "folder_path": None,
        "source_type": "text",
        "status": "processing",
    }
    url = api.post(
        "/api/v1/knowledge-base/url", json={"url": "https://example.com/about-us", "name": "About Us"}
    )
    assert url.status_code == 200 and url.json()["source_type"] == "url"

    got = api.get(f"/api/v1/knowledge-base/{doc['id']}").json()
    assert got["document_id"] == doc["id"] and got["name"] == "Company FAQ" and got["status"] == "ready"
    assert isinstance(got["created_at_unix"], int)
    # The stack is shared with other suites (the fuzzer makes documents too), so walk every page:
    # the listing must reach both documents and end with no cursor.
    listed_ids: list[str] = []
    cursor: str | None = None
    for _ in range(1000):
        params = {"page_size": 100} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/knowledge-base", params=params).json()
        listed_ids += [d["id"] for d in page["documents"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert cursor is None
    assert len(listed_ids) == len(set(listed_ids))
    assert {doc["id"], url.json()["id"]} <= set(listed_ids)

    deleted = api.delete(f"/api/v1/knowledge-base/{doc['id']}")
    assert deleted.json() == {"success": True, "message": f"Document {doc['id']} deleted successfully"}
    assert api.get(f"/api/v1/knowledge-base/{doc['id']}").status_code == 404


def _docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def test_knowledge_base_file_upload_and_ingest(api: httpx.Client, sim: httpx.Client) -> None:
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    response = api.post(
        "/api/v1/knowledge-base/file",
        files={"file": ("catalog.pdf", pdf, "application/pdf")},
        data={"name": "Product Catalog 2026"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Product Catalog 2026"
    assert response.json()["source_type"] == "file"
    uploads = upstream_requests(sim, "/v1/convai/knowledge-base/file", "POST")
    assert uploads[-1]["form"]["file"]["filename"] == "catalog.pdf"
    assert uploads[-1]["form"]["file"]["size"] == len(pdf)

    docx = api.post(
        "/api/v1/knowledge-base/ingest",
        files={"file": ("policy.docx", _docx(), "application/octet-stream")},
        data={"source_type": "file"},
    )
    assert docx.status_code == 200, docx.text
    text = api.post(
        "/api/v1/knowledge-base/ingest", data={"source_type": "text", "text": "hello", "name": "T"}
    )
    assert text.status_code == 200 and text.json()["source_type"] == "text"
    md = api.post(
        "/api/v1/knowledge-base/ingest", files={"file": ("n.md", b"# Title\n")}, data={"source_type": "file"}
    )
    assert md.status_code == 200


def test_agent_lifecycle_simple_and_full(api: httpx.Client, sim: httpx.Client) -> None:
    tools = api.post(
        "/api/v1/tools/ecommerce", json={"webhook_base_url": "https://a.example.com/api/v1"}
    ).json()
    doc = api.post("/api/v1/knowledge-base/text", json={"text": "FAQ text", "name": "FAQ"}).json()
    simple = api.post(
        "/api/v1/agents",
        json={
            "name": "Customer Support Agent",
            "language": "en",
            "voice_id": "21m00Tcm4TlvDq8ikWAM",
            "first_message": "Hello! This is Sarah.",
            "system_prompt": "You are Sarah.",
            "tool_ids": [tools["products_tool_id"], tools["orders_tool_id"]],
            "knowledge_base_ids": [doc["id"]],
        },
    )
    assert simple.status_code == 200, simple.text
    assert set(simple.json()) == {"agent_id"}
    agent_id = simple.json()["agent_id"]

    detail = api.get(f"/api/v1/agents/{agent_id}").json()
    agent = detail["conversation_config"]["agent"]
    assert detail["name"] == "Customer Support Agent"
    assert agent["first_message"] == "Hello! This is Sarah."
    assert agent["prompt"]["prompt"] == "You are Sarah."
    assert agent["prompt"]["tool_ids"] == [tools["products_tool_id"], tools["orders_tool_id"]]
    assert agent["prompt"]["knowledge_base"][0]["id"] == doc["id"]
    assert detail["conversation_config"]["tts"]["voice_id"] == "21m00Tcm4TlvDq8ikWAM"

    # Call-time overrides must be allowed, else ElevenLabs silently ignores a call's first_message.
    create = upstream_requests(sim, "/v1/convai/agents/create", "POST")[-1]["json"]
    overrides = create["platform_settings"]["overrides"]["conversation_config_override"]
    assert overrides["agent"]["first_message"] is True and overrides["agent"]["language"] is True

    full = api.post(
        "/api/v1/agents",
        json={
            "name": "Italian Support Agent",
            "conversation_config": {
                "agent": {
                    "first_message": "Ciao!",
                    "language": "it",
                    "prompt": {"prompt": "Sei un assistente."},
                },
                "tts": {"voice_id": "italian_voice_id"},
            },
        },
    )
    assert full.status_code == 200, full.text
    italian = api.get(f"/api/v1/agents/{full.json()['agent_id']}").json()
    assert italian["conversation_config"]["agent"]["language"] == "it"
    assert italian["conversation_config"]["tts"]["voice_id"] == "italian_voice_id"

    listed = api.get("/api/v1/agents", params={"page_size": 100}).json()
    summary = next(a for a in listed["agents"] if a["agent_id"] == agent_id)
    assert summary == {
        "agent_id": agent_id,
        "name": "Customer Support Agent",
        "conversation_config": {"agent": {"language": "en", "first_message": "Hello! This is Sarah."}},
    }

    patched = api.patch(
        f"/api/v1/agents/{agent_id}",
        json={
            "name": "Updated Agent Name",
            "conversation_config": {"agent": {"first_message": "New greeting"}},
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Updated Agent Name"
    assert patched.json()["conversation_config"]["agent"]["first_message"] == "New greeting"
    # A partial conversation_config leaves the rest alone.
    assert patched.json()["conversation_config"]["agent"]["prompt"]["prompt"] == "You are Sarah."

    # Only provided fields change.
    prompt = api.patch(f"/api/v1/agents/{agent_id}/prompt", json={"system_prompt": "You are updated."})
    assert prompt.status_code == 200, prompt.text
    after = prompt.json()["conversation_config"]["agent"]
    assert after["prompt"]["prompt"] == "You are updated."
    assert after["first_message"] == "New greeting"
    assert after["prompt"]["tool_ids"] == [tools["products_tool_id"], tools["orders_tool_id"]]
    assert api.get(f"/api/v1/agents/{agent_id}").json()["conversation_config"]["agent"] == after

    deleted = api.delete(f"/api/v1/agents/{agent_id}")
    assert deleted.json() == {"success": True, "message": f"Agent {agent_id} deleted successfully"}
    # api-v1.md 12's "Agent Not Found", plus the detail every error of ours carries (optional there).
    gone = api.get(f"/api/v1/agents/{agent_id}")
    assert gone.status_code == 404
    assert gone.json() == {
        "success": False,
        "error": f"Agent not found: {agent_id}",
        "detail": "No such resource: it does not exist or was deleted",
    }


def test_correlation_id_reaches_elevenlabs(api: httpx.Client, sim: httpx.Client) -> None:
    response = api.post(
        "/api/v1/knowledge-base/text",
        json={"text": "corr", "name": "corr"},
        headers={"X-Correlation-ID": "corr-e2e-1"},
    )
    assert response.headers["X-Correlation-ID"] == "corr-e2e-1"
    sent = [
        r for r in upstream_requests(sim, "/v1/convai/knowledge-base/text") if r["json"]["name"] == "corr"
    ]
    assert sent[-1]["headers"]["x-correlation-id"] == "corr-e2e-1"


@pytest.mark.parametrize(
    "presented",
    ["c" * 129, "corr id with spaces", "<script>", "ünïcode", "-leading-dash", "a" * 8192],
)
def test_an_unusable_correlation_id_is_replaced_not_carried(api: httpx.Client, presented: str) -> None:
    """A caller's id travels into every log line, Kafka header and event of the work: one too long or
    strange is replaced by a fresh one rather than kept (and never a 4xx/5xx for it)."""
    # As bytes: httpx sends str header values as ASCII only, a client in the wild sends any bytes.
    response = api.get("/api/v1/agents", headers={b"X-Correlation-ID": presented.encode()})
    assert response.status_code == 200, response.text
    bound = response.headers["X-Correlation-ID"]
    assert bound != presented and len(bound) == 32 and bound.isalnum(), bound
