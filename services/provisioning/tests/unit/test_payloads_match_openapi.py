"""The payloads domain.py builds validate against the official ElevenLabs OpenAPI schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

jsonschema = pytest.importorskip("jsonschema")

_REPO = Path(__file__).resolve().parents[4]
_CANDIDATES = (
    _REPO / "services/elevenlabs-sim/src/elevenlabs_sim/openapi_subset.json",
    _REPO.parent / "shared/reference/elevenlabs-openapi.json",
)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    for path in _CANDIDATES:
        if path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
    pytest.skip("no ElevenLabs OpenAPI spec available")


def _errors(spec: dict[str, Any], component: str, instance: Any) -> list[str]:
    schema = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]


def _request_schema(spec: dict[str, Any], path: str, method: str) -> str:
    content = spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return str(content["$ref"]).rsplit("/", 1)[-1]


def test_ecommerce_tools_validate(spec: dict[str, Any]) -> None:
    component = _request_schema(spec, "/v1/convai/tools", "post")
    for tool in domain.ECOMMERCE_TOOLS:
        config = domain.ecommerce_tool_config("https://x/api/v1", tool, "sec_1", "X-Switchboard-Tool-Token")
        assert _errors(spec, component, {"tool_config": config}) == []


def test_call_control_tools_validate_and_send_the_conversation_and_number(spec: dict[str, Any]) -> None:
    component = _request_schema(spec, "/v1/convai/tools", "post")
    for tool in domain.CALL_TOOLS.values():
        config = domain.call_tool_config("https://x/api/v1", tool, "sec_1", "X-Switchboard-Tool-Token")
        assert _errors(spec, component, {"tool_config": config}) == []
        body = config["api_schema"]["request_body_schema"]["properties"]
        assert body["conversation_id"]["dynamic_variable"] == "system__conversation_id"
        assert body["called_number"]["dynamic_variable"] == "system__called_number"
        assert config["api_schema"]["url"] == f"https://x/api/v1/webhook/{tool.route}"
        assert domain.tool_token_route({"tool_config": config}) == tool.route


@pytest.mark.parametrize("with_parameters", [True, False])
def test_email_template_tool_validates(spec: dict[str, Any], with_parameters: bool) -> None:
    parameters = [
        TemplateParameter(name="date", description="The appointment date", required=True),
        TemplateParameter(name="notes", description=""),
    ]
    command = CreateEmailTemplate(
        name="confirm_appointment",
        description="Send the confirmation.",
        subject_template="Confirmed {{date}}",
        body_template="Dear {{customer_name}}, {{date}}. {{notes}}",
        parameters=parameters if with_parameters else [],
        webhook_base_url="https://x/api/v1",
    )
    config = domain.email_tool_config(command, "sec_1", "X-Switchboard-Tool-Token")
    component = _request_schema(spec, "/v1/convai/tools", "post")
    assert _errors(spec, component, {"tool_config": config}) == []


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_custom_tool_validates(spec: dict[str, Any], method: str) -> None:
    command = CreateWebhookTool(
        name="check_inventory",
        description="Check stock.",
        webhook_url="https://api.example/inventory",
        http_method=method,
        parameters=[
            ToolParameter(name="product_id", description="The product", required=True),
            ToolParameter(name="qty", type="integer"),
            ToolParameter(name="gift", type="boolean"),
        ],
    )
    component = _request_schema(spec, "/v1/convai/tools", "post")
    assert _errors(spec, component, {"tool_config": domain.webhook_tool_config(command)}) == []


def test_agent_create_validates(spec: dict[str, Any]) -> None:
    command = CreateAgent(
        name="Support",
        language="en",
        voice_id="21m00Tcm4TlvDq8ikWAM",
        first_message="Hi",
        system_prompt="Be nice",
        tool_ids=["t1"],
        conversation_config={"tts": {"model_id": "eleven_flash_v2_5"}},
    )
    body = domain.agent_create_body(command, [domain.kb_locator("d1", "FAQ", "text")])
    component = _request_schema(spec, "/v1/convai/agents/create", "post")
    assert _errors(spec, component, body) == []


def test_agent_patch_validates(spec: dict[str, Any]) -> None:
    command = UpdateAgent(
        agent_id="a1",
        name="New",
        first_message="Hello",
        language="it",
        system_prompt="P",
        tool_ids=["t2"],
        conversation_config={"tts": {"voice_id": "v"}},
    )
    body = domain.agent_patch_body(command, [domain.kb_locator("d1", "FAQ", "url")])
    component = _request_schema(spec, "/v1/convai/agents/{agent_id}", "patch")
    assert _errors(spec, component, body) == []
