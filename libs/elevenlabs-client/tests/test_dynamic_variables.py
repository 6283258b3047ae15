"""Which dynamic variables an agent needs before a call (shapes from the official OpenAPI spec)."""

from __future__ import annotations

from typing import Any

from elevenlabs_client import dynamic_variables as variables


def _agent(
    first_message: str = "", prompt: str = "", defaults: dict[str, Any] | None = None, **prompt_fields: Any
) -> dict[str, Any]:
    agent: dict[str, Any] = {"first_message": first_message, "prompt": {"prompt": prompt, **prompt_fields}}
    if defaults is not None:
        agent["dynamic_variables"] = {"dynamic_variable_placeholders": defaults}
    return {"agent_id": "agent_1", "conversation_config": {"agent": agent}}


ISSUE_AGENT = _agent(first_message="Hi {{customer_name}}, about order {{order_id}}")


def test_the_issue_example_names_the_missing_variable() -> None:
    assert variables.missing(ISSUE_AGENT, {"customer_name": "Ana"}) == ["order_id"]
    assert variables.missing(ISSUE_AGENT, {}) == ["customer_name", "order_id"]
    # Any JSON type supplies a value (a number stays a number); null does not.
    assert variables.missing(ISSUE_AGENT, {"customer_name": "Ana", "order_id": 1042}) == []
    assert variables.missing(ISSUE_AGENT, {"customer_name": "Ana", "order_id": False}) == []
    assert variables.missing(ISSUE_AGENT, {"customer_name": "Ana", "order_id": None}) == ["order_id"]


def test_defaults_and_system_variables_count_as_supplied() -> None:
    agent = _agent(
        first_message="Hi {{ customer_name }}",
        prompt="Call {{system__caller_id}} at {{system__time_utc}} about {{topic}} for {{customer_name}}.",
        defaults={"customer_name": "there"},
    )
    assert variables.required(agent) == {"customer_name", "topic"}
    assert variables.missing(agent, {}) == ["topic"]
    assert variables.missing(agent, {"topic": "delivery"}) == []


def test_a_first_message_override_replaces_the_agents() -> None:
    assert variables.missing(ISSUE_AGENT, {}, first_message="Hello {{name}}") == ["name"]
    assert variables.missing(ISSUE_AGENT, {}, first_message="Hello!") == []


def test_tools_urls_headers_and_runtime_parameters_count() -> None:
    tool = {
        "type": "webhook",
        "name": "orders",
        "api_schema": {
            "url": "https://shop.example/orders/{{order_id}}",
            "request_headers": {"X-Store": "{{store_id}}", "Authorization": {"secret_id": "sec_1"}},
            "request_body_schema": {
                "type": "object",
                "properties": {
                    "conversation_id": {"type": "string", "dynamic_variable": "system__conversation_id"},
                    "customer": {"type": "string", "dynamic_variable": "customer_ref"},
                    "note": {"type": "string", "description": "what the caller wants"},
                },
            },
        },
        "assignments": [{"source": "response", "dynamic_variable": "store_id", "value_path": "store.id"}],
    }
    inline = _agent(tools=[tool])
    assert variables.required(inline) == {"order_id", "customer_ref"}  # store_id comes from a response
    by_id = _agent(tool_ids=["tool_1"])
    assert variables.tool_ids(by_id) == ["tool_1"]
    assert variables.missing(by_id, {"order_id": 7}, [tool]) == ["customer_ref"]


def test_odd_shapes_need_nothing() -> None:
    assert variables.required({}) == set()
    assert (
        variables.required({"conversation_config": {"agent": {"first_message": None, "prompt": "x"}}})
        == set()
    )
    assert variables.defaults({"conversation_config": {"agent": {"dynamic_variables": []}}}) == {}
    assert variables.placeholders("{{ }} {{1abc}} {a} {{ok}}") == {"ok"}
