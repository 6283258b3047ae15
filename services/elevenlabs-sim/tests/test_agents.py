from __future__ import annotations

from typing import Any

import httpx

from elevenlabs_sim import openapi

from .conftest import WEBHOOK_TOOL


async def create_agent(client: httpx.AsyncClient, **body: Any) -> str:
    payload = {"conversation_config": {}, **body}
    r = await client.post("/v1/convai/agents/create", json=payload)
    assert r.status_code == 200, r.text
    agent_id: str = r.json()["agent_id"]
    return agent_id


async def test_create_requires_conversation_config(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/convai/agents/create", json={"name": "x"})
    assert r.status_code == 422
    assert r.json() == {
        "detail": [{"type": "missing", "loc": ["body", "conversation_config"], "msg": "Field required"}]
    }
    r = await client.post(
        "/v1/convai/agents/create", json={"conversation_config": {"tts": {"model_id": "eleven_nonexistent"}}}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "conversation_config", "tts", "model_id"]


async def test_create_get_defaults_and_shape(client: httpx.AsyncClient) -> None:
    agent_id = await create_agent(
        client,
        name="Support",
        tags=["a"],
        conversation_config={"agent": {"first_message": "Hi {{user_name}}", "prompt": {"prompt": "Be nice"}}},
    )
    assert agent_id.startswith("agent_")
    r = await client.get(f"/v1/convai/agents/{agent_id}")
    assert r.status_code == 200
    agent = r.json()
    assert openapi.validate_component("GetAgentResponseModel", agent, []) == []
    cc = agent["conversation_config"]
    assert cc["agent"]["first_message"] == "Hi {{user_name}}"
    assert cc["agent"]["language"] == "en"
    assert cc["agent"]["prompt"]["prompt"] == "Be nice"
    assert cc["tts"]["voice_id"] == "cjVigY5qzO86Huf0OWal"
    assert cc["tts"]["model_id"] == "eleven_flash_v2"
    assert agent["name"] == "Support"
    assert agent["tags"] == ["a"]
    assert agent["phone_numbers"] == []
    assert set(agent["metadata"]) == {"created_at_unix_secs", "updated_at_unix_secs"}

    bare = (await client.get(f"/v1/convai/agents/{await create_agent(client)}")).json()
    assert bare["conversation_config"]["agent"]["first_message"] == ""
    assert bare["conversation_config"]["agent"]["prompt"]["prompt"] == ""


async def test_patch_deep_merges(client: httpx.AsyncClient) -> None:
    agent_id = await create_agent(
        client,
        name="A",
        conversation_config={
            "agent": {"first_message": "Hello", "prompt": {"prompt": "old", "temperature": 0.3}},
            "tts": {"voice_id": "voice_1"},
        },
        platform_settings={"call_limits": {"agent_concurrency_limit": 5}},
    )
    r = await client.patch(
        f"/v1/convai/agents/{agent_id}",
        json={
            "conversation_config": {"agent": {"prompt": {"prompt": "new"}}},
            "platform_settings": {"call_limits": {"daily_limit": 10}},
        },
    )
    assert r.status_code == 200, r.text
    agent = r.json()
    cc = agent["conversation_config"]
    assert cc["agent"]["prompt"]["prompt"] == "new"
    assert cc["agent"]["prompt"]["temperature"] == 0.3
    assert cc["agent"]["first_message"] == "Hello"
    assert cc["tts"]["voice_id"] == "voice_1"
    limits = agent["platform_settings"]["call_limits"]
    assert limits["agent_concurrency_limit"] == 5
    assert limits["daily_limit"] == 10
    assert agent["name"] == "A"
    assert (await client.get(f"/v1/convai/agents/{agent_id}")).json() == agent

    r = await client.patch(
        f"/v1/convai/agents/{agent_id}", json={"conversation_config": {"tts": {"stability": 5}}}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "conversation_config", "tts", "stability"]
    assert (await client.get(f"/v1/convai/agents/{agent_id}")).json()["conversation_config"]["tts"].get(
        "stability"
    ) != 5


async def test_references_and_not_found(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/convai/agents/create",
        json={"conversation_config": {"agent": {"prompt": {"tool_ids": ["tool_missing"]}}}},
    )
    assert r.status_code == 422
    assert r.json()["detail"]["status"] == "invalid_tool_ids"
    kb = [{"type": "text", "name": "FAQ", "id": "doc_missing"}]
    r = await client.post(
        "/v1/convai/agents/create",
        json={"conversation_config": {"agent": {"prompt": {"knowledge_base": kb}}}},
    )
    assert r.status_code == 422
    assert r.json()["detail"]["status"] == "invalid_knowledge_base_ids"

    tool_id = (await client.post("/v1/convai/tools", json={"tool_config": WEBHOOK_TOOL})).json()["id"]
    doc_id = (await client.post("/v1/convai/knowledge-base/text", json={"text": "t", "name": "FAQ"})).json()[
        "id"
    ]
    agent_id = await create_agent(
        client,
        conversation_config={
            "agent": {
                "prompt": {
                    "tool_ids": [tool_id],
                    "knowledge_base": [{"type": "text", "name": "FAQ", "id": doc_id}],
                }
            }
        },
    )
    deps = (await client.get(f"/v1/convai/tools/{tool_id}/dependent-agents")).json()
    assert [a["id"] for a in deps["agents"]] == [agent_id]
    assert (await client.delete(f"/v1/convai/tools/{tool_id}")).status_code == 409
    assert (await client.delete(f"/v1/convai/tools/{tool_id}", params={"force": "true"})).status_code == 200
    assert (await client.delete(f"/v1/convai/knowledge-base/{doc_id}")).status_code == 409
    assert (
        await client.delete(f"/v1/convai/knowledge-base/{doc_id}", params={"force": True})
    ).status_code == 200
    prompt = (await client.get(f"/v1/convai/agents/{agent_id}")).json()["conversation_config"]["agent"][
        "prompt"
    ]
    assert prompt["tool_ids"] == []
    assert prompt["knowledge_base"] == []

    assert (await client.delete(f"/v1/convai/agents/{agent_id}")).status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        r = await client.request(
            method, f"/v1/convai/agents/{agent_id}", json={} if method == "PATCH" else None
        )
        assert r.status_code == 404
        assert r.json() == {"detail": {"status": "agent_not_found", "message": "Agent not found"}}


async def test_list_agents_pagination_search_archived(client: httpx.AsyncClient) -> None:
    ids = [await create_agent(client, name=f"Agent {i}") for i in range(35)]
    archived = await create_agent(client, name="Old", platform_settings={"archived": True})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"page_size": 10, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/convai/agents", params=params)).json()
        assert openapi.validate_component("GetAgentsPageResponseModel", page, []) == []
        seen += [a["agent_id"] for a in page["agents"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids)
    assert seen[0] == ids[-1]  # newest first by default

    found = (await client.get("/v1/convai/agents", params={"search": "agent 3"})).json()["agents"]
    assert {a["name"] for a in found} == {"Agent 3", *(f"Agent {i}" for i in range(30, 35))}
    arch = (await client.get("/v1/convai/agents", params={"archived": "true"})).json()["agents"]
    assert [a["agent_id"] for a in arch] == [archived]
    assert arch[0]["archived"] is True
