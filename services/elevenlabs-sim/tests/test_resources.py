from __future__ import annotations

import copy
from typing import Any

import httpx

from elevenlabs_sim import openapi

from .conftest import WEBHOOK_TOOL


def tool(name: str = "save_note", **api_schema: Any) -> dict[str, Any]:
    config = copy.deepcopy(WEBHOOK_TOOL)
    config["name"] = name
    config["api_schema"].update(api_schema)
    return {"tool_config": config}


async def test_auth_missing_and_wrong_key(client: httpx.AsyncClient) -> None:
    expected = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
    r = await client.get("/v1/convai/tools", headers={"xi-api-key": ""})
    assert r.status_code == 401
    assert r.json() == expected
    r = await client.get("/v1/convai/agents", headers={"xi-api-key": "nope"})
    assert r.status_code == 401
    assert r.json() == expected
    async with httpx.AsyncClient(transport=client._transport, base_url="http://sim") as anon:
        assert (await anon.get("/_sim/state")).status_code == 200
        assert (await anon.get("/v1/convai/tools")).status_code == 401


async def test_tool_crud(client: httpx.AsyncClient) -> None:
    secret = (
        await client.post("/v1/convai/secrets", json={"type": "new", "name": "svc_token", "value": "s3cr3t"})
    ).json()
    body = tool(request_headers={"Authorization": {"secret_id": secret["secret_id"]}})
    r = await client.post("/v1/convai/tools", json=body)
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["id"].startswith("tool_")
    assert set(created) == {"id", "tool_config", "access_info", "usage_stats", "response_mocks"}
    cfg = created["tool_config"]
    assert cfg["name"] == "save_note"
    assert cfg["response_timeout_secs"] == 20  # default filled from the spec
    assert cfg["api_schema"]["request_headers"] == {"Authorization": {"secret_id": secret["secret_id"]}}
    assert openapi.validate_component("ToolResponseModel", created, []) == []

    tool_id = created["id"]
    assert (await client.get(f"/v1/convai/tools/{tool_id}")).json() == created

    secrets = (await client.get("/v1/convai/secrets")).json()["secrets"]
    assert secrets[0]["secret_id"] == secret["secret_id"]
    assert "value" not in secrets[0]
    assert [t["id"] for t in secrets[0]["used_by"]["tools"]] == [tool_id]

    r = await client.delete(f"/v1/convai/secrets/{secret['secret_id']}")
    assert r.status_code == 409
    assert r.json()["detail"]["status"] == "secret_in_use"

    patched = tool(name="save_note_v2")
    r = await client.patch(f"/v1/convai/tools/{tool_id}", json=patched)
    assert r.status_code == 200
    assert r.json()["tool_config"]["name"] == "save_note_v2"

    listed = (await client.get("/v1/convai/tools")).json()
    assert [t["id"] for t in listed["tools"]] == [tool_id]
    assert listed["has_more"] is False
    assert listed["next_cursor"] is None

    assert (await client.delete(f"/v1/convai/tools/{tool_id}")).status_code == 200
    r = await client.get(f"/v1/convai/tools/{tool_id}")
    assert r.status_code == 404
    assert r.json() == {"detail": {"status": "tool_not_found", "message": "Tool not found"}}


async def test_tool_validation_errors(client: httpx.AsyncClient) -> None:
    body = tool()
    del body["tool_config"]["api_schema"]
    r = await client.post("/v1/convai/tools", json=body)
    assert r.status_code == 422
    assert r.json() == {
        "detail": [
            {
                "type": "missing",
                "loc": ["body", "tool_config", "webhook", "api_schema"],
                "msg": "Field required",
            }
        ]
    }

    r = await client.post("/v1/convai/tools", json=tool(method="FETCH"))
    assert r.status_code == 422
    [err] = r.json()["detail"]
    assert err["loc"] == ["body", "tool_config", "webhook", "api_schema", "method"]
    assert err["type"] == "enum"

    r = await client.post("/v1/convai/tools", json={"tool_config": {"type": "teleport"}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "union_tag_invalid"

    r = await client.post(
        "/v1/convai/tools", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"

    r = await client.post(
        "/v1/convai/tools", json=tool(request_headers={"X": {"secret_id": "secret_missing"}})
    )
    assert r.status_code == 422
    assert r.json()["detail"]["status"] == "invalid_secret_ids"


async def test_tool_pagination_and_filters(client: httpx.AsyncClient) -> None:
    for i in range(35):
        assert (await client.post("/v1/convai/tools", json=tool(name=f"tool_{i:02d}"))).status_code == 200
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"page_size": 10}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/convai/tools", params=params)).json()
        pages += 1
        seen.extend(t["id"] for t in page["tools"])
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert pages == 4
    assert len(seen) == 35
    assert len(set(seen)) == 35

    found = (await client.get("/v1/convai/tools", params={"search": "TOOL_1"})).json()["tools"]
    assert sorted(t["tool_config"]["name"] for t in found) == [f"tool_{i}" for i in range(10, 20)]
    by_name = (
        await client.get("/v1/convai/tools", params={"sort_by": "name", "sort_direction": "asc"})
    ).json()
    assert by_name["tools"][0]["tool_config"]["name"] == "tool_00"
    assert (await client.get("/v1/convai/tools", params={"types": "client"})).json()["tools"] == []
    assert (await client.get("/v1/convai/tools", params={"page_size": 101})).status_code == 422


async def test_secrets(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/convai/secrets", json={"type": "new", "name": "k", "value": "v"})
    assert r.status_code == 200
    created = r.json()
    assert created["type"] == "stored"
    assert created["secret_id"].startswith("secret_")
    assert (await client.post("/v1/convai/secrets", json={"type": "new", "name": "k"})).status_code == 422
    assert (await client.delete(f"/v1/convai/secrets/{created['secret_id']}")).status_code == 204
    r = await client.delete(f"/v1/convai/secrets/{created['secret_id']}")
    assert r.status_code == 404
    assert r.json()["detail"]["status"] == "secret_not_found"


async def test_knowledge_base(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/convai/knowledge-base/text", json={"text": "Opening hours 9-5", "name": "FAQ"})
    assert r.status_code == 200
    text_doc = r.json()
    assert text_doc == {"id": text_doc["id"], "name": "FAQ", "folder_path": []}
    url_doc = (
        await client.post("/v1/convai/knowledge-base/url", json={"url": "https://example.com/x"})
    ).json()
    r = await client.post(
        "/v1/convai/knowledge-base/file",
        files={"file": ("guide.txt", b"hello file", "text/plain")},
        data={"name": "Guide"},
    )
    assert r.status_code == 200, r.text
    file_doc = r.json()

    listing = (await client.get("/v1/convai/knowledge-base")).json()
    assert openapi.validate_component("GetKnowledgeBaseListResponseModel", listing, []) == []
    by_id = {d["id"]: d for d in listing["documents"]}
    assert by_id[text_doc["id"]]["type"] == "text"
    assert by_id[url_doc["id"]]["url"] == "https://example.com/x"
    assert by_id[file_doc["id"]]["metadata"]["size_bytes"] == len(b"hello file")
    assert set(by_id[text_doc["id"]]["metadata"]) == {
        "created_at_unix_secs",
        "last_updated_at_unix_secs",
        "size_bytes",
    }
    only_urls = (await client.get("/v1/convai/knowledge-base", params={"types": "url"})).json()["documents"]
    assert [d["id"] for d in only_urls] == [url_doc["id"]]

    detail = (await client.get(f"/v1/convai/knowledge-base/{file_doc['id']}")).json()
    assert detail["type"] == "file"
    assert detail["filename"] == "guide.txt"
    assert detail["extracted_inner_html"] == "hello file"
    assert detail["name"] == "Guide"

    r = await client.post("/v1/convai/knowledge-base/file", files={"other": ("a.txt", b"x")})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "file"]
    assert (await client.post("/v1/convai/knowledge-base/text", json={"name": "x"})).status_code == 422

    assert (await client.delete(f"/v1/convai/knowledge-base/{text_doc['id']}")).status_code == 200
    r = await client.get(f"/v1/convai/knowledge-base/{text_doc['id']}")
    assert r.status_code == 404
    assert r.json()["detail"]["status"] == "document_not_found"


async def test_workspace_webhooks_and_settings(client: httpx.AsyncClient) -> None:
    settings = {"auth_type": "hmac", "name": "post-call", "webhook_url": "https://example.com/hook"}
    r = await client.post("/v1/workspace/webhooks", json={"settings": settings})
    assert r.status_code == 200
    hook = r.json()
    assert hook["webhook_secret"]
    r = await client.post("/v1/workspace/webhooks", json={"settings": {**settings, "auth_type": "oauth"}})
    assert r.status_code == 422

    initial = (await client.get("/v1/convai/settings")).json()
    assert initial["webhooks"]["post_call_webhook_id"] is None
    r = await client.patch(
        "/v1/convai/settings",
        json={"webhooks": {"post_call_webhook_id": hook["webhook_id"], "events": ["transcript"]}},
    )
    assert r.status_code == 200
    current = (await client.get("/v1/convai/settings")).json()
    assert current["webhooks"]["post_call_webhook_id"] == hook["webhook_id"]
    assert current["webhooks"]["events"] == ["transcript"]
    assert current["webhooks"]["transcript_format"] == "json"

    hooks = (await client.get("/v1/workspace/webhooks")).json()["webhooks"]
    assert hooks[0]["webhook_id"] == hook["webhook_id"]
    assert hooks[0]["usage"] == [{"usage_type": "ConvAI Settings"}]
    r = await client.patch("/v1/convai/settings", json={"webhooks": {"post_call_webhook_id": "missing"}})
    assert r.status_code == 404
    r = await client.patch("/v1/convai/settings", json={"webhooks": {"events": ["nonsense"]}})
    assert r.status_code == 422
