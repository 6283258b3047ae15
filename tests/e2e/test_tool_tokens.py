"""Mid-call tool tokens over the whole stack (issue 12): each token opens its own tool only,
`POST /tools/{id}/rotate-token` switches the tool upstream to a new token while the previous one
keeps working for its grace period, and `DELETE /tools/{id}` revokes its tokens. The tokens are read
where only ElevenLabs (the simulator) sees them: the workspace secrets provisioning created."""

from __future__ import annotations

from typing import Any

import httpx

from devinfra.stack import Stack
from tests.e2e.conftest import poll, upstream_requests

REFUSED = {
    "success": False,
    "error": "Unauthorized tool call",
    "detail": "The tool token is missing, invalid, revoked or expired",
}


def _secret_values(sim: httpx.Client) -> list[str]:
    return [r["json"]["value"] for r in upstream_requests(sim, "/v1/convai/secrets", "POST")]


def _token_of(sim: httpx.Client, tool: dict[str, Any], header: str = "X-Switchboard-Tool-Token") -> str:
    """The token in the workspace secret the tool's header points at, as we sent it upstream."""
    secret_id = tool["tool_config"]["api_schema"]["request_headers"][header]["secret_id"]
    name = sim.get(f"/v1/convai/secrets/{secret_id}", headers={"xi-api-key": "sim-key"}).json()["name"]
    sent = [
        r["json"]["value"]
        for r in upstream_requests(sim, "/v1/convai/secrets", "POST")
        if r["json"]["name"] == name
    ]
    assert len(sent) == 1, f"secret {name}: {len(sent)} creations in the simulator's request log"
    return str(sent[0])


def test_tool_tokens_are_bound_rotated_and_revoked(
    api: httpx.Client, sim: httpx.Client, stack: Stack
) -> None:
    webhook_base = f"{stack.url('tool-webhooks')}/api/v1"
    tools = api.post("/api/v1/tools/ecommerce", json={"webhook_base_url": webhook_base})
    assert tools.status_code == 200, tools.text
    orders_id, products_id = tools.json()["orders_tool_id"], tools.json()["products_tool_id"]
    before = set(_secret_values(sim))
    orders = api.get(f"/api/v1/tools/{orders_id}").json()
    products = api.get(f"/api/v1/tools/{products_id}").json()
    first, products_token = _token_of(sim, orders), _token_of(sim, products)

    with httpx.Client(base_url=f"{webhook_base}/webhook", timeout=30) as hooks:

        def status(route: str, token: str) -> int:
            body = {"conversation_id": "conv_nobody", "order_number": "1"}
            return hooks.post(route, json=body, headers={"X-Switchboard-Tool-Token": token}).status_code

        poll(lambda: status("ecommerce/orders", first) == 200)  # once tool-webhooks has the tool
        # a tool's token opens its own tool only
        assert status("ecommerce/products", first) == 401
        assert status("ecommerce/orders", products_token) == 401
        assert poll(lambda: status("ecommerce/products", products_token) == 200)

        rotated = api.post(f"/api/v1/tools/{orders_id}/rotate-token")
        assert rotated.status_code == 200, rotated.text
        body = rotated.json()
        assert body["success"] is True and body["tool_id"] == orders_id
        assert body["previous_token_valid_until_unix"] > 0
        now_orders = api.get(f"/api/v1/tools/{orders_id}").json()
        second = _token_of(sim, now_orders)
        assert second != first and second not in before
        assert status("ecommerce/orders", second) == 200
        assert status("ecommerce/orders", first) == 200  # within its grace period

        deleted = api.delete(f"/api/v1/tools/{orders_id}")
        assert deleted.status_code == 200, deleted.text
        poll(lambda: status("ecommerce/orders", second) == 401)
        refused = hooks.post(
            "ecommerce/orders", json={"conversation_id": "c"}, headers={"X-Switchboard-Tool-Token": first}
        )
        assert (refused.status_code, refused.json()) == (401, REFUSED)
        assert status("ecommerce/products", products_token) == 200  # its sibling lives on
        missing = api.post(f"/api/v1/tools/{orders_id}/rotate-token")
        assert missing.status_code == 404 and missing.json()["success"] is False
