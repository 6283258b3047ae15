"""Webhook tools called during answered simulated calls (``tool_invocation.py``)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from elevenlabs_sim import openapi
from elevenlabs_sim.testing import free_port

from .conftest import WebhookReceiver, wait_until

TWILIO = {
    "provider": "twilio",
    "phone_number": "+15550001111",
    "label": "Sales line",
    "sid": "AC" + "1" * 32,
    "token": "twilio-auth-token-xyz",
}
SECRET_VALUE = "Bearer tool-secret-0123456789"
TERMINAL = {"done", "failed"}


class ToolServer:
    """A tool server in a thread: records every request; answers by path (status, JSON body)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.responses: dict[str, tuple[int, Any]] = {}
        self.base = ""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def tool(path: str, request: Request) -> Response:
            raw = await request.body()
            self.received.append(
                {
                    "method": request.method,
                    "path": "/" + path,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "json": json.loads(raw) if raw else None,
                }
            )
            status, body = self.responses.get("/" + path, (200, {"ok": True, "path": "/" + path}))
            return Response(json.dumps(body), status_code=status, media_type="application/json")

        return app

    def for_conversation(self, conversation_id: str) -> list[dict[str, Any]]:
        return [r for r in self.received if (r["json"] or {}).get("conversation_id") == conversation_id]


@pytest.fixture
def tool_server() -> Iterator[ToolServer]:
    srv = ToolServer()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(srv.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "tool server did not start"
        time.sleep(0.01)
    srv.base = f"http://127.0.0.1:{port}"
    try:
        yield srv
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _order_tool(base: str, secret_id: str) -> dict[str, Any]:
    return {
        "tool_config": {
            "type": "webhook",
            "name": "lookup_order",
            "description": "Look up an order",
            "response_timeout_secs": 5,
            "api_schema": {
                "url": base + "/accounts/{account_id}/orders",
                "method": "POST",
                "path_params_schema": {"account_id": {"type": "string", "constant_value": "acct-9"}},
                "query_params_schema": {
                    "properties": {
                        "lang": {"type": "string", "description": "language", "enum": ["en", "de"]}
                    },
                    "required": ["lang"],
                },
                "request_headers": {
                    "Authorization": {"secret_id": secret_id},
                    "X-Caller": {"variable_name": "system__caller_id"},
                    "X-Static": "abc",
                },
                "request_body_schema": {
                    "type": "object",
                    "required": ["query", "order_number"],
                    "description": "",
                    "properties": {
                        "query": {"type": "string", "description": "what the caller looks for"},
                        "order_number": {"type": "string", "description": "the order number"},
                        "email": {"type": "string", "description": "the caller's e-mail"},
                        "date": {"type": "string", "description": "preferred date"},
                        "time": {"type": "string", "description": "preferred time"},
                        "notes": {"type": "string", "description": "anything else"},
                        "quantity": {"type": "integer", "description": "how many"},
                        "budget": {"type": "number", "description": "budget"},
                        "gift": {"type": "boolean", "description": "is it a gift"},
                        "conversation_id": {"type": "string", "dynamic_variable": "system__conversation_id"},
                        "agent_id": {"type": "string", "dynamic_variable": "system__agent_id"},
                        "call_sid": {"type": "string", "dynamic_variable": "system__call_sid"},
                        "called_number": {"type": "string", "dynamic_variable": "system__called_number"},
                        "time_utc": {"type": "string", "dynamic_variable": "system__time_utc"},
                        "customer": {"type": "string", "dynamic_variable": "customer_name"},
                        "source": {"type": "string", "constant_value": "voice"},
                    },
                },
            },
        }
    }


def _get_tool(base: str) -> dict[str, Any]:
    return {
        "tool_config": {
            "type": "webhook",
            "name": "check_stock",
            "description": "Check stock",
            "api_schema": {
                "url": base + "/stock/{sku}",
                "method": "GET",
                "path_params_schema": {"sku": {"type": "string", "description": "the product"}},
                "query_params_schema": {
                    "properties": {
                        "conversation_id": {"type": "string", "dynamic_variable": "system__conversation_id"}
                    }
                },
            },
        }
    }


CLIENT_TOOL = {
    "tool_config": {
        "type": "client",
        "name": "show_banner",
        "description": "UI only",
        "parameters": {"type": "object", "properties": {}},
    }
}


async def _setup(c: httpx.AsyncClient, base: str) -> dict[str, str]:
    secret = await c.post(
        "/v1/convai/secrets", json={"type": "new", "name": "tool-auth", "value": SECRET_VALUE}
    )
    secret_id = secret.json()["secret_id"]
    ids: dict[str, str] = {}
    for key, body in (
        ("order", _order_tool(base, secret_id)),
        ("stock", _get_tool(base)),
        ("client", CLIENT_TOOL),
    ):
        r = await c.post("/v1/convai/tools", json=body)
        assert r.status_code == 200, r.text
        ids[key] = r.json()["id"]
    r = await c.post(
        "/v1/convai/agents/create",
        json={
            "name": "Shop agent",
            "conversation_config": {
                "agent": {
                    "first_message": "Hi {{customer_name}}",
                    "prompt": {"tool_ids": [ids["client"], ids["order"]]},
                }
            },
        },
    )
    assert r.status_code == 200, r.text
    ids["agent"] = r.json()["agent_id"]
    r = await c.post("/v1/convai/phone-numbers", json=TWILIO)
    ids["phone"] = r.json()["phone_number_id"]
    return ids


async def _dial(c: httpx.AsyncClient, ids: dict[str, str], to_number: str, **client_data: Any) -> str:
    body = {
        "agent_id": ids["agent"],
        "agent_phone_number_id": ids["phone"],
        "to_number": to_number,
        "conversation_initiation_client_data": {
            "dynamic_variables": {"customer_name": "Ana", "customer_email": "ana@example.org"},
            **client_data,
        },
    }
    r = await c.post("/v1/convai/twilio/outbound-call", json=body)
    assert r.status_code == 200 and r.json()["success"] is True, r.text
    cid: str = r.json()["conversation_id"]
    return cid


async def _conversation(c: httpx.AsyncClient, cid: str) -> dict[str, Any]:
    body: dict[str, Any] = (await c.get(f"/v1/convai/conversations/{cid}")).json()
    return body


async def _wait_terminal(c: httpx.AsyncClient, *cids: str) -> None:
    async def terminal() -> bool:
        statuses = [(await _conversation(c, cid))["status"] for cid in cids]
        return all(s in TERMINAL for s in statuses)

    await wait_until(terminal)


def _tool_turns(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in conversation["transcript"] if t.get("tool_calls") or t.get("tool_results")]


async def test_webhook_tool_called_with_secret_variables_and_llm_values(
    calls_client: httpx.AsyncClient, tool_server: ToolServer, receiver: WebhookReceiver
) -> None:
    c = calls_client
    await c.post("/_sim/config", json={"webhook_url": receiver.url, "webhook_secret": "s"})
    ids = await _setup(c, tool_server.base)
    cid = await _dial(c, ids, "+15557770001")
    await _wait_terminal(c, cid)

    got = tool_server.for_conversation(cid)
    assert len(got) == 1  # the client tool is not called
    req = got[0]
    assert (req["method"], req["path"], req["query"]) == ("POST", "/accounts/acct-9/orders", {"lang": "en"})
    assert req["headers"]["authorization"] == SECRET_VALUE
    assert req["headers"]["x-caller"] == TWILIO["phone_number"]
    assert req["headers"]["x-static"] == "abc"
    assert req["headers"]["content-type"] == "application/json"
    call = (await c.get("/_sim/calls")).json()["calls"][0]
    body = req["json"]
    assert body["conversation_id"] == cid
    assert body["agent_id"] == ids["agent"]
    assert body["call_sid"] == call["call_id"] and body["called_number"] == "+15557770001"
    assert body["customer"] == "Ana" and body["source"] == "voice"
    assert body["time_utc"].startswith("20")
    assert {k: body[k] for k in ("query", "order_number", "email", "date", "time", "notes")} == {
        "query": "blue mug",
        "order_number": "1001",
        "email": "ana@example.org",
        "date": "February 1, 2026",
        "time": "2:00 PM",
        "notes": "sample notes",
    }
    assert (body["quantity"], body["budget"], body["gift"]) == (1, 1.0, True)

    # The transcript (GET and post-call webhook) holds the call and its result.
    conversation = await _conversation(c, cid)
    assert openapi.validate_component("GetConversationResponseModel", conversation, []) == []
    turns = _tool_turns(conversation)
    assert len(turns) == 1 and turns[0]["role"] == "agent"
    tool_call, result = turns[0]["tool_calls"][0], turns[0]["tool_results"][0]
    assert tool_call["tool_name"] == "lookup_order" and tool_call["type"] == "webhook"
    assert tool_call["tool_has_been_called"] is True
    assert json.loads(tool_call["params_as_json"])["query"] == "blue mug"
    assert tool_call["tool_details"]["headers"]["Authorization"] == "***"
    assert result["request_id"] == tool_call["request_id"] and result["tool_name"] == "lookup_order"
    assert result["is_error"] is False and json.loads(result["result_value"])["ok"] is True
    assert result["tool_latency_secs"] >= 0 and result["type"] == "webhook"
    assert conversation["transcript"][0]["message"] == "Hi Ana"
    assert SECRET_VALUE not in json.dumps(conversation)

    async def delivered() -> bool:
        return bool(receiver.for_conversation(cid))

    await wait_until(delivered)
    data = receiver.for_conversation(cid)[0]["json"]["data"]
    assert _tool_turns(data) == turns

    log = (await c.get("/_sim/tool-calls", params={"conversation_id": cid})).json()["tool_calls"]
    assert len(log) == 1
    entry = log[0]
    assert entry["method"] == "POST" and entry["url"] == f"{tool_server.base}/accounts/acct-9/orders?lang=en"
    assert entry["headers"]["Authorization"] == "***" and entry["headers"]["X-Static"] == "abc"
    assert entry["body"] == body and entry["status"] == 200 and entry["is_error"] is False
    assert json.loads(entry["response_text"])["ok"] is True and entry["latency_secs"] >= 0
    assert SECRET_VALUE not in json.dumps((await c.get("/_sim/tool-calls")).json())

    # Overrides force LLM values (by name, or "<tool>.<name>"); the dial's override adds a tool.
    r = await c.post(
        "/_sim/config",
        json={
            "tool_value_overrides": {"query": "red kettle", "lookup_order.order_number": "A-77", "sku": "k 1"}
        },
    )
    assert r.json()["tool_value_overrides"]["query"] == "red kettle"
    cid2 = await _dial(
        c,
        ids,
        "+15557770002",
        conversation_config_override={"agent": {"prompt": {"tool_ids": [ids["stock"], ids["order"]]}}},
    )
    await _wait_terminal(c, cid2)
    body2 = tool_server.for_conversation(cid2)[0]["json"]
    assert (body2["query"], body2["order_number"]) == ("red kettle", "A-77")
    stock = [r for r in tool_server.received if r["path"].startswith("/stock/")]
    assert len(stock) == 1
    assert stock[0]["method"] == "GET" and stock[0]["path"] == "/stock/k 1"
    assert stock[0]["query"] == {"conversation_id": cid2} and stock[0]["json"] is None
    names = [t["tool_calls"][0]["tool_name"] for t in _tool_turns(await _conversation(c, cid2))]
    assert names == ["lookup_order", "check_stock"]
    r = await c.post("/_sim/config", json={"tool_value_overrides": None})
    assert r.json()["tool_value_overrides"] == {}


async def test_only_answered_calls_call_tools_and_errors_are_recorded(
    calls_client: httpx.AsyncClient, tool_server: ToolServer
) -> None:
    c = calls_client
    ids = await _setup(c, tool_server.base)
    tool_server.responses["/accounts/acct-9/orders"] = (500, {"error": "boom"})
    cids = {digit: await _dial(c, ids, f"+1555777000{digit}") for digit in "56789"}
    await _wait_terminal(c, *cids.values())

    for digit in "568":
        assert tool_server.for_conversation(cids[digit]) == []
        assert _tool_turns(await _conversation(c, cids[digit])) == []
        assert (await c.get("/_sim/tool-calls", params={"conversation_id": cids[digit]})).json() == {
            "tool_calls": []
        }
    for digit in "79":  # voicemail and lost-webhook calls are answered: the tool is called
        assert len(tool_server.for_conversation(cids[digit])) == 1
        conversation = await _conversation(c, cids[digit])
        assert openapi.validate_component("GetConversationResponseModel", conversation, []) == []
        result = _tool_turns(conversation)[0]["tool_results"][0]
        assert result["is_error"] is True and "boom" in result["result_value"]
        log = (await c.get("/_sim/tool-calls", params={"conversation_id": cids[digit]})).json()["tool_calls"]
        assert log[0]["status"] == 500 and log[0]["is_error"] is True


async def test_unreachable_tool_server_is_an_error_result(calls_client: httpx.AsyncClient) -> None:
    c = calls_client
    ids = await _setup(c, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    cid = await _dial(c, ids, "+15557770003")
    await _wait_terminal(c, cid)
    result = _tool_turns(await _conversation(c, cid))[0]["tool_results"][0]
    assert result["is_error"] is True and "ConnectError" in result["result_value"]
    entry = (await c.get("/_sim/tool-calls", params={"conversation_id": cid})).json()["tool_calls"][0]
    assert entry["status"] is None and entry["error"] and entry["is_error"] is True


async def test_invoke_tools_false_disables_tool_calls(
    calls_client: httpx.AsyncClient, tool_server: ToolServer
) -> None:
    c = calls_client
    assert (await c.get("/_sim/config")).json()["invoke_tools"] is True
    r = await c.post("/_sim/config", json={"invoke_tools": False})
    assert r.json()["invoke_tools"] is False
    ids = await _setup(c, tool_server.base)
    cid = await _dial(c, ids, "+15557770004")
    await _wait_terminal(c, cid)
    assert tool_server.received == []
    assert _tool_turns(await _conversation(c, cid)) == []
    assert (await c.get("/_sim/tool-calls")).json() == {"tool_calls": []}
    await c.post("/_sim/reset")
    assert (await c.get("/_sim/config")).json()["invoke_tools"] is True


async def test_a_callee_asks_for_a_tool_only_in_their_call_with_their_words_and_values(
    calls_client: httpx.AsyncClient, tool_server: ToolServer, receiver: WebhookReceiver
) -> None:
    c = calls_client
    asks = {
        "+15557770011": [{"tool": "lookup_order", "says": "Call me back at 5", "params": {"notes": "5pm"}}]
    }
    r = await c.post(
        "/_sim/config",
        json={"webhook_url": receiver.url, "webhook_secret": "s", "callee_requests": asks},
    )
    assert r.status_code == 200 and r.json()["callee_requests"]["+15557770011"][0]["tool"] == "lookup_order"
    ids = await _setup(c, tool_server.base)
    asking = await _dial(c, ids, "+15557770011")
    quiet = await _dial(c, ids, "+15557770012")
    await _wait_terminal(c, asking, quiet)

    assert tool_server.for_conversation(quiet) == []  # a requested tool waits for its callee
    (req,) = tool_server.for_conversation(asking)
    assert req["json"]["notes"] == "5pm" and req["json"]["query"] == "blue mug"
    transcript = (await _conversation(c, asking))["transcript"]
    said = [t for t in transcript if t["role"] == "user" and t["message"] == "Call me back at 5"]
    assert len(said) == 1
    assert transcript.index(said[0]) < transcript.index(_tool_turns({"transcript": transcript})[0])


async def test_a_test_sets_the_post_call_analysis_values_per_number(
    calls_client: httpx.AsyncClient, tool_server: ToolServer, receiver: WebhookReceiver
) -> None:
    c = calls_client
    values = {"*": {"interest": "low"}, "+15557770021": {"outcome": "call_back_later"}}
    await c.post(
        "/_sim/config",
        json={"webhook_url": receiver.url, "webhook_secret": "s", "data_collection_values": values},
    )
    ids = await _setup(c, tool_server.base)
    set_one, other = await _dial(c, ids, "+15557770021"), await _dial(c, ids, "+15557770022")
    await _wait_terminal(c, set_one, other)
    first = (await _conversation(c, set_one))["analysis"]["data_collection_results"]
    second = (await _conversation(c, other))["analysis"]["data_collection_results"]
    assert first["outcome"]["value"] == "call_back_later" and first["interest"]["value"] == "low"
    assert second["outcome"]["value"] == "appointment_confirmed" and second["interest"]["value"] == "low"


async def test_a_callee_who_asks_once_does_not_ask_again_in_the_next_call(
    calls_client: httpx.AsyncClient, tool_server: ToolServer, receiver: WebhookReceiver
) -> None:
    c = calls_client
    asks = {"+15557770031": [{"tool": "lookup_order", "says": "Call me back", "once": True}]}
    await c.post(
        "/_sim/config", json={"webhook_url": receiver.url, "webhook_secret": "s", "callee_requests": asks}
    )
    ids = await _setup(c, tool_server.base)
    first = await _dial(c, ids, "+15557770031")
    await _wait_terminal(c, first)
    second = await _dial(c, ids, "+15557770031")
    await _wait_terminal(c, second)
    assert len(tool_server.for_conversation(first)) == 1
    assert tool_server.for_conversation(second) == []


async def test_a_tool_on_request_waits_for_a_callee_who_asks(
    calls_client: httpx.AsyncClient, tool_server: ToolServer, receiver: WebhookReceiver
) -> None:
    c = calls_client
    config = {"webhook_url": receiver.url, "webhook_secret": "s", "tools_on_request": ["lookup_order"]}
    assert (await c.post("/_sim/config", json=config)).json()["tools_on_request"] == ["lookup_order"]
    ids = await _setup(c, tool_server.base)
    cid = await _dial(c, ids, "+15557770041")
    await _wait_terminal(c, cid)
    assert tool_server.for_conversation(cid) == []


async def test_the_config_with_requests_already_made_can_be_sent_back(
    calls_client: httpx.AsyncClient,
) -> None:
    asks = {"+15557770051": [{"tool": "opt_out", "once": True, "asked": True}]}
    response = await calls_client.post("/_sim/config", json={"callee_requests": asks})
    assert (
        response.status_code == 200 and response.json()["callee_requests"]["+15557770051"][0]["asked"] is True
    )
