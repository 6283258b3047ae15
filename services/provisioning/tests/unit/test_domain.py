"""Payload builders, the tool token and merge rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contracts.provisioning import (
    CreateAgent,
    CreateEmailTemplate,
    CreateWebhookTool,
    TemplateParameter,
    ToolParameter,
    UpdateAgent,
)
from provisioning import domain


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("https://x.example/api/v1/webhook/ecommerce/orders", "ecommerce/orders"),
        ("https://x.example/api/v1/webhook/ecommerce/products/", "ecommerce/products"),
        ("https://x.example/api/v1/webhook/email/confirm_appointment", "email/confirm_appointment"),
        ("https://x.example/api/v1/webhook/inventory", None),  # a custom webhook tool
        ("https://other.example/check", None),
    ],
)
def test_the_route_a_tool_calls_is_read_from_its_url(url: str, route: str | None) -> None:
    assert domain.tool_token_route({"tool_config": {"api_schema": {"url": url}}}) == route


def test_a_new_token_secret_replaces_only_the_token_header() -> None:
    tool = {
        "tool_config": {
            "name": "get_orders",
            "api_schema": {
                "url": "https://x.example/api/v1/webhook/ecommerce/orders",
                "request_headers": {"x-switchboard-tool-token": {"secret_id": "old"}, "X-Other": "kept"},
            },
        }
    }
    config = domain.with_token_secret(tool, "X-Switchboard-Tool-Token", "new")
    assert config["api_schema"]["request_headers"] == {
        "X-Other": "kept",
        "X-Switchboard-Tool-Token": {"secret_id": "new"},
    }
    assert config["name"] == "get_orders"
    assert tool["tool_config"]["api_schema"]["request_headers"]["x-switchboard-tool-token"] == {
        "secret_id": "old"
    }


def test_secret_name_uses_purpose_and_eight_nonce_chars() -> None:
    assert domain.secret_name("products", "0123456789abcdef") == "switchboard-tool-products-01234567"


def test_ecommerce_products_tool_config() -> None:
    config = domain.ecommerce_tool_config(
        "https://x.example/api/v1/", domain.PRODUCTS_TOOL, "sec_1", "X-Switchboard-Tool-Token"
    )
    schema = config["api_schema"]
    assert config["name"] == "get_products"
    assert schema["url"] == "https://x.example/api/v1/webhook/ecommerce/products"
    assert schema["method"] == "POST"
    assert schema["request_headers"] == {"X-Switchboard-Tool-Token": {"secret_id": "sec_1"}}
    body = schema["request_body_schema"]
    assert body["required"] == ["query"]
    assert body["properties"]["limit"]["type"] == "integer"
    assert body["properties"]["conversation_id"] == {
        "type": "string",
        "dynamic_variable": "system__conversation_id",
    }


def test_ecommerce_orders_tool_config_has_optional_lookup_keys() -> None:
    config = domain.ecommerce_tool_config("https://x/api/v1", domain.ORDERS_TOOL, "sec_2", "X-T")
    body = config["api_schema"]["request_body_schema"]
    assert config["api_schema"]["url"] == "https://x/api/v1/webhook/ecommerce/orders"
    assert body["required"] == []
    assert set(body["properties"]) == {"order_number", "email", "postcode", "conversation_id"}
    assert "e-mail" in body["properties"]["email"]["description"]
    assert body["properties"]["postcode"]["type"] == "string"
    assert "postcode" in config["description"]


def _webhook(method: str) -> CreateWebhookTool:
    return CreateWebhookTool(
        name="check_inventory",
        description="Check stock.",
        webhook_url="https://api.example/inventory",
        http_method=method,
        parameters=[
            ToolParameter(name="product_id", description="The product", required=True),
            ToolParameter(name="location", type="string"),
        ],
    )


def test_custom_post_tool_puts_parameters_in_the_body_without_secret_header() -> None:
    schema = domain.webhook_tool_config(_webhook("POST"))["api_schema"]
    assert schema["request_body_schema"]["required"] == ["product_id"]
    assert schema["request_body_schema"]["properties"]["location"]["description"]  # never empty
    assert "request_headers" not in schema
    assert "query_params_schema" not in schema


def test_custom_get_tool_puts_parameters_in_the_query() -> None:
    schema = domain.webhook_tool_config(_webhook("GET"))["api_schema"]
    assert "request_body_schema" not in schema
    assert schema["query_params_schema"]["required"] == ["product_id"]
    assert set(schema["query_params_schema"]["properties"]) == {"product_id", "location"}


def test_agent_create_body_from_simple_fields() -> None:
    command = CreateAgent(
        name="Support",
        language="en",
        voice_id="voice1",
        first_message="Hi",
        system_prompt="Be nice",
        tool_ids=["t1"],
        knowledge_base_ids=["d1"],
    )
    locator = domain.kb_locator("d1", "FAQ", "text")
    body = domain.agent_create_body(command, [locator])
    agent = body["conversation_config"]["agent"]
    assert agent["first_message"] == "Hi"
    assert agent["language"] == "en"
    assert agent["prompt"] == {"prompt": "Be nice", "tool_ids": ["t1"], "knowledge_base": [locator]}
    assert locator == {"type": "text", "name": "FAQ", "id": "d1", "usage_mode": "auto"}
    assert body["conversation_config"]["tts"] == {"voice_id": "voice1"}
    assert body["tags"] == ["switchboard", f"sb-cmd-{command.message_id}"]
    override = body["platform_settings"]["overrides"]["conversation_config_override"]
    assert override == {
        "agent": {"first_message": True, "language": True, "prompt": {"prompt": True}},
        "tts": {"voice_id": True},
    }


def test_agent_create_full_form_is_merged_over_simple_fields() -> None:
    command = CreateAgent(
        name="Italian",
        first_message="Hello",
        tool_ids=["t1"],
        conversation_config={
            "agent": {"first_message": "Ciao", "language": "it", "prompt": {"prompt": "Sei..."}},
            "tts": {"voice_id": "it_voice", "model_id": "eleven_flash_v2_5"},
        },
    )
    config = domain.agent_create_body(command, [])["conversation_config"]
    assert config["agent"]["first_message"] == "Ciao"
    assert config["agent"]["language"] == "it"
    assert config["agent"]["prompt"] == {"prompt": "Sei...", "tool_ids": ["t1"], "knowledge_base": []}
    assert config["tts"] == {"voice_id": "it_voice", "model_id": "eleven_flash_v2_5"}


def test_agent_patch_contains_only_provided_fields() -> None:
    assert domain.agent_patch_body(UpdateAgent(agent_id="a1", name="New"), None) == {"name": "New"}
    body = domain.agent_patch_body(
        UpdateAgent(
            agent_id="a1", system_prompt="P", tool_ids=[], conversation_config={"tts": {"speed": 1.1}}
        ),
        None,
    )
    assert body == {
        "conversation_config": {"tts": {"speed": 1.1}, "agent": {"prompt": {"prompt": "P", "tool_ids": []}}}
    }
    locator = domain.kb_locator("d", "n", "url")
    body = domain.agent_patch_body(UpdateAgent(agent_id="a1", knowledge_base_ids=["d"]), [locator])
    assert body == {"conversation_config": {"agent": {"prompt": {"knowledge_base": [locator]}}}}


def test_document_name_is_always_explicit() -> None:
    assert domain.document_name("Given", "text", "x", None, None) == "Given"
    assert domain.document_name(None, "url", None, "https://a/b", None) == "https://a/b"
    assert domain.document_name(None, "file", None, None, "cat.pdf") == "cat.pdf"
    assert domain.document_name(None, "text", "  FAQ line\nmore", None, None) == "FAQ line"
    assert domain.document_name(None, "text", "", None, None) == "Untitled"


def _email_template() -> CreateEmailTemplate:
    return CreateEmailTemplate(
        name="confirm_appointment",
        description="Use when the customer confirms their appointment.",
        subject_template="Appointment Confirmed - {{date}} at {{time}}",
        body_template="Dear {{customer_name}},\n{{date}} {{time}}\n{{notes}}",
        parameters=[
            TemplateParameter(name="date", description="The appointment date", required=True),
            TemplateParameter(name="time", description="The appointment time", required=True),
            TemplateParameter(name="notes", description="Any additional notes"),
        ],
        webhook_base_url="https://x.example/api/v1/",
    )


def test_email_tool_config_posts_parameters_and_conversation_id_with_secret_header() -> None:
    config = domain.email_tool_config(_email_template(), "sec_9", "X-Switchboard-Tool-Token")
    assert (config["type"], config["name"]) == ("webhook", "confirm_appointment")
    assert config["description"] == "Use when the customer confirms their appointment."
    schema = config["api_schema"]
    assert schema["url"] == "https://x.example/api/v1/webhook/email/confirm_appointment"
    assert (schema["method"], schema["content_type"]) == ("POST", "application/json")
    assert schema["request_headers"] == {"X-Switchboard-Tool-Token": {"secret_id": "sec_9"}}
    body = schema["request_body_schema"]
    assert body["type"] == "object"
    assert body["properties"] == {
        "date": {"type": "string", "description": "The appointment date"},
        "time": {"type": "string", "description": "The appointment time"},
        "notes": {"type": "string", "description": "Any additional notes"},
        "conversation_id": {"type": "string", "dynamic_variable": "system__conversation_id"},
    }
    assert body["required"] == ["date", "time", "conversation_id"]


def test_email_tool_config_without_parameters_still_carries_the_conversation() -> None:
    command = _email_template().model_copy(update={"parameters": []})
    body = domain.email_tool_config(command, "s", "H")["api_schema"]["request_body_schema"]
    assert body["properties"] == {
        "conversation_id": {"type": "string", "dynamic_variable": "system__conversation_id"}
    }
    assert body["required"] == ["conversation_id"]


def test_email_tool_route_is_the_token_route() -> None:
    assert domain.email_tool_route("confirm_appointment") == "email/confirm_appointment"


def test_email_template_record_uses_the_name_as_id_and_naive_utc_iso_time() -> None:
    at = datetime(2026, 1, 28, 9, 38, 2, 753538, tzinfo=timezone(timedelta(hours=1)))
    record = domain.email_template_record(_email_template(), "tool_1", at)
    assert (record.template_id, record.name, record.tool_id) == (
        "confirm_appointment",
        "confirm_appointment",
        "tool_1",
    )
    assert record.created_at == "2026-01-28T08:38:02.753538"
    assert [p.name for p in record.parameters] == ["date", "time", "notes"]
    assert record.subject_template == "Appointment Confirmed - {{date}} at {{time}}"
