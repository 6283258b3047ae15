"""Rules and ElevenLabs payloads of the provisioning service (pure functions, no I/O)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from contracts.provisioning import (
    AgentRecord,
    CreateAgent,
    CreateEmailTemplate,
    CreateWebhookTool,
    EmailTemplateRecord,
    KnowledgeDocumentRecord,
    TemplateParameter,
    ToolParameter,
    ToolRecord,
    ToolToken,
    UpdateAgent,
)
from elevenlabs_client.agents import deep_merge, prompt_fields

JSON = dict[str, Any]

SWITCHBOARD_TAG = "switchboard"
CONVERSATION_ID_VARIABLE = "system__conversation_id"


# ---- tool-call authentication -----------------------------------------------------------------


# The token ElevenLabs sends (from a workspace secret the tool's request header points at) when it
# calls one of our webhooks: `bus.secrets.mint_tool_token`, naming the tool's lineage (`token_id`,
# the creating command's message id) and generation (1, then +1 per rotation). tool-webhooks
# checks the signature, then its record of the tool: deleted, or rotated past that generation.

# `purpose` in the names of the secrets a rotation creates (see `secret_name`).
ROTATED_SHORT_NAME = "token"


def secret_name(purpose: str, nonce: str) -> str:
    """Name of the workspace secret holding a tool token; unique per command, so recovery finds it."""
    return f"switchboard-tool-{purpose}-{nonce[:8]}"


def tool_token_route(tool: JSON) -> str | None:
    """The tool-webhooks route a tool calls (``ecommerce/orders``, ``email/<template>``): the part of
    its URL after ``/webhook/``; None for a tool that calls anything else."""
    url = str(((tool.get("tool_config") or {}).get("api_schema") or {}).get("url") or "")
    _, found, route = url.partition("/webhook/")
    route = route.split("?", 1)[0].strip("/")
    known = (PRODUCTS_TOOL.route, ORDERS_TOOL.route, CALLBACK_TOOL.route, OPT_OUT_TOOL.route)
    if not found or not (route in known or route.startswith("email/")):
        return None
    return route


def with_token_secret(tool: JSON, auth_header: str, secret_id: str) -> JSON:
    """The tool's config with its token header pointing at `secret_id` (all else as it is)."""
    config = copy.deepcopy(tool.get("tool_config") or {})
    schema = config.setdefault("api_schema", {})
    headers = {
        k: v for k, v in (schema.get("request_headers") or {}).items() if k.lower() != auth_header.lower()
    }
    headers[auth_header] = {"secret_id": secret_id}
    schema["request_headers"] = headers
    return config


# ---- e-commerce tools ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EcommerceTool:
    """One predefined e-commerce tool."""

    name: str
    route: str
    purpose: Literal["ecommerce_products", "ecommerce_orders", "callback", "opt_out"]
    short_name: str
    description: str
    parameters: tuple[ToolParameter, ...]


PRODUCTS_TOOL = EcommerceTool(
    name="get_products",
    route="ecommerce/products",
    purpose="ecommerce_products",
    short_name="products",
    description=(
        "Search the store's product catalogue. Use it whenever the caller asks about products, "
        "availability, prices or recommendations; pass what they are looking for as `query`."
    ),
    parameters=(
        ToolParameter(
            name="query",
            type="string",
            description="What the caller is looking for, e.g. a product name, category or feature.",
            required=True,
        ),
        ToolParameter(
            name="limit",
            type="integer",
            description="Maximum number of products to return (optional, default 5).",
            required=False,
        ),
    ),
)

ORDERS_TOOL = EcommerceTool(
    name="get_orders",
    route="ecommerce/orders",
    purpose="ecommerce_orders",
    short_name="orders",
    description=(
        "Look up the caller's orders and their status. Use it when the caller asks where an order "
        "is, what they bought or about delivery. Ask for the order number first; if they do not "
        "have it, ask for the e-mail address used for the order. An order is only read out to its "
        "customer: if the answer says it could not be verified, ask for the e-mail address or the "
        "postcode on the order and call again with them."
    ),
    parameters=(
        ToolParameter(
            name="order_number",
            type="string",
            description="The order number the caller gives, if they have one.",
            required=False,
        ),
        ToolParameter(
            name="email",
            type="string",
            description=(
                "The e-mail address on the order (billing e-mail) as the caller spells it: finds "
                "their orders when there is no order number, and confirms the order is theirs."
            ),
            required=False,
        ),
        ToolParameter(
            name="postcode",
            type="string",
            description="The billing postcode (ZIP) on the order as the caller says it, to confirm it is theirs.",
            required=False,
        ),
    ),
)

ECOMMERCE_TOOLS = (PRODUCTS_TOOL, ORDERS_TOOL)

# ---- call-control tools: what the callee asks for (tool-webhooks `calls/*`) ---------------------

CALLBACK_TOOL = EcommerceTool(
    name="schedule_callback",
    route="calls/callback",
    purpose="callback",
    short_name="callback",
    description=(
        'Book a call back when the person asks to be called again at another time ("call me '
        'tomorrow at five"). Pass the time as they said it, or as an ISO 8601 local time; it is '
        "read in their own time zone. Confirm to them the time the answer says was booked."
    ),
    parameters=(
        ToolParameter(
            name="requested_time",
            type="string",
            description=(
                'When to call back, in the person\'s words (e.g. "tomorrow at 5pm", "Monday '
                'morning at 10") or ISO 8601 local time (e.g. 2026-12-01T17:00).'
            ),
            required=True,
        ),
    ),
)

OPT_OUT_TOOL = EcommerceTool(
    name="opt_out",
    route="calls/opt-out",
    purpose="opt_out",
    short_name="optout",
    description=(
        'Record at once that the person does not want to be called again ("stop calling me", '
        '"take me off your list"). Then apologise, confirm they will not be called again and '
        "end the call politely."
    ),
    parameters=(
        ToolParameter(
            name="reason",
            type="string",
            description="What the person said, in a few words (optional).",
            required=False,
        ),
    ),
)

CALL_TOOLS = {"callback": CALLBACK_TOOL, "opt_out": OPT_OUT_TOOL}
CALLED_NUMBER_VARIABLE = "system__called_number"


def call_tool_config(webhook_base_url: str, tool: EcommerceTool, secret_id: str, auth_header: str) -> JSON:
    """Webhook tool_config of a call-control tool: as the e-commerce tools, plus the callee's number
    (so tool-webhooks knows whom the call reached even before the call's projection arrives)."""
    config = ecommerce_tool_config(webhook_base_url, tool, secret_id, auth_header)
    body = config["api_schema"]["request_body_schema"]
    body["properties"]["called_number"] = {"type": "string", "dynamic_variable": CALLED_NUMBER_VARIABLE}
    return config


def ecommerce_tool_url(webhook_base_url: str, tool: EcommerceTool) -> str:
    return f"{webhook_base_url.rstrip('/')}/webhook/{tool.route}"


def ecommerce_tool_config(
    webhook_base_url: str, tool: EcommerceTool, secret_id: str, auth_header: str
) -> JSON:
    """Webhook tool_config for `get_products` / `get_orders`, authenticated by a secret header."""
    body = _object_schema(tool.parameters)
    body["properties"]["conversation_id"] = {"type": "string", "dynamic_variable": CONVERSATION_ID_VARIABLE}
    return {
        "type": "webhook",
        "name": tool.name,
        "description": tool.description,
        "api_schema": {
            "url": ecommerce_tool_url(webhook_base_url, tool),
            "method": "POST",
            "content_type": "application/json",
            "request_body_schema": body,
            "request_headers": {auth_header: {"secret_id": secret_id}},
        },
    }


# ---- e-mail template tools ----------------------------------------------------------------------

# `purpose` in the names of e-mail tools' token secrets (see `secret_name`).
EMAIL_SHORT_NAME = "email"


def email_tool_route(template_name: str) -> str:
    """The tool-webhooks route (and tool-token route) of an e-mail template's tool."""
    return f"email/{template_name}"


def email_tool_url(webhook_base_url: str, template_name: str) -> str:
    return f"{webhook_base_url.rstrip('/')}/webhook/{email_tool_route(template_name)}"


def email_tool_config(command: CreateEmailTemplate, secret_id: str, auth_header: str) -> JSON:
    """Webhook tool_config of an e-mail template: one string per template parameter, plus the call."""
    body = _object_schema([_email_parameter(p) for p in command.parameters])
    body["properties"]["conversation_id"] = {"type": "string", "dynamic_variable": CONVERSATION_ID_VARIABLE}
    body["required"].append("conversation_id")
    return {
        "type": "webhook",
        "name": command.name,
        "description": command.description,
        "api_schema": {
            "url": email_tool_url(command.webhook_base_url, command.name),
            "method": "POST",
            "content_type": "application/json",
            "request_body_schema": body,
            "request_headers": {auth_header: {"secret_id": secret_id}},
        },
    }


def _email_parameter(parameter: TemplateParameter) -> ToolParameter:
    return ToolParameter(
        name=parameter.name, type="string", description=parameter.description, required=parameter.required
    )


def email_template_record(
    command: CreateEmailTemplate, tool_id: str, created_at: datetime
) -> EmailTemplateRecord:
    return EmailTemplateRecord(
        template_id=command.name,
        name=command.name,
        description=command.description,
        subject_template=command.subject_template,
        body_template=command.body_template,
        parameters=list(command.parameters),
        tool_id=tool_id,
        created_at=iso_timestamp(created_at),
    )


def iso_timestamp(at: datetime) -> str:
    """ISO 8601 in UTC without an offset, e.g. ``2026-01-28T08:38:02.753538`` (the API's format)."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat()


# ---- custom webhook tool ------------------------------------------------------------------------


def webhook_tool_config(command: CreateWebhookTool) -> JSON:
    """tool_config for a user-defined webhook: parameters go in the body, or the query for GET/DELETE."""
    api_schema: JSON = {"url": command.webhook_url, "method": command.http_method}
    if command.parameters:
        if command.http_method in ("GET", "DELETE"):
            schema = _object_schema(command.parameters)
            api_schema["query_params_schema"] = {
                "properties": schema["properties"],
                "required": schema["required"],
            }
        else:
            api_schema["content_type"] = "application/json"
            api_schema["request_body_schema"] = _object_schema(command.parameters)
    return {
        "type": "webhook",
        "name": command.name,
        "description": command.description,
        "api_schema": api_schema,
    }


def _object_schema(parameters: tuple[ToolParameter, ...] | list[ToolParameter]) -> JSON:
    return {
        "type": "object",
        "description": "",
        "properties": {p.name: _literal(p) for p in parameters},
        "required": [p.name for p in parameters if p.required],
    }


def _literal(parameter: ToolParameter) -> JSON:
    # A description is what makes the LLM fill the value, so it is never empty.
    return {"type": parameter.type, "description": parameter.description or f"The {parameter.name}."}


# ---- agents -------------------------------------------------------------------------------------

# Without these permissions ElevenLabs silently ignores a call's conversation_config_override.
CALL_OVERRIDES: JSON = {
    "conversation_config_override": {
        "agent": {"first_message": True, "language": True, "prompt": {"prompt": True}},
        "tts": {"voice_id": True},
    }
}


def command_tag(message_id: str) -> str:
    """Tag marking the agent a command created, so a retried command can find it upstream."""
    return f"sb-cmd-{message_id}"


def kb_locator(document_id: str, name: str, type_: str) -> JSON:
    return {"type": type_, "name": name, "id": document_id, "usage_mode": "auto"}


def agent_create_body(command: CreateAgent, knowledge_base: list[JSON]) -> JSON:
    """`POST /v1/convai/agents/create` body: simple fields, then the full-form config merged over."""
    config = prompt_fields(
        first_message=command.first_message,
        language=command.language,
        system_prompt=command.system_prompt,
        tool_ids=command.tool_ids,
        knowledge_base=knowledge_base,
        voice_id=command.voice_id,
    )
    if command.conversation_config:
        config = deep_merge(config, command.conversation_config)
    return {
        "name": command.name,
        "tags": [SWITCHBOARD_TAG, command_tag(command.message_id)],
        "conversation_config": config,
        "platform_settings": {"overrides": copy.deepcopy(CALL_OVERRIDES)},
    }


def agent_patch_body(command: UpdateAgent, knowledge_base: list[JSON] | None) -> JSON:
    """`PATCH /v1/convai/agents/{id}` body with only the provided fields; lists replace."""
    body: JSON = {}
    if command.name is not None:
        body["name"] = command.name
    config = deep_merge(command.conversation_config or {}, {})
    shortcuts = prompt_fields(
        first_message=command.first_message,
        language=command.language,
        system_prompt=command.system_prompt,
        tool_ids=command.tool_ids,
        knowledge_base=knowledge_base,
    )
    config = deep_merge(config, shortcuts)
    if config:
        body["conversation_config"] = config
    return body


# ---- snapshots ----------------------------------------------------------------------------------


def tool_record(
    response: JSON, purpose: str = "webhook", created_at_unix: int = 0, token: ToolToken | None = None
) -> ToolRecord:
    config = response.get("tool_config") or {}
    return ToolRecord.model_validate(
        {
            "tool_id": response["id"],
            "name": config.get("name", ""),
            "description": config.get("description", ""),
            "type": config.get("type", "webhook"),
            "purpose": purpose,
            "tool_config": config,
            "created_at_unix": created_at_unix,
            "token": token,
        }
    )


def document_record(response: JSON, source_type: str) -> KnowledgeDocumentRecord:
    metadata = response.get("metadata") or {}
    return KnowledgeDocumentRecord.model_validate(
        {
            "document_id": response["id"],
            "name": response.get("name", ""),
            "source_type": source_type,
            "type": response.get("type", source_type),
            "status": response.get("status") or "processing",
            "folder_path": response.get("folder_path") or None,
            "created_at_unix": int(metadata.get("created_at_unix_secs") or 0),
        }
    )


def agent_record(response: JSON) -> AgentRecord:
    metadata = response.get("metadata") or {}
    return AgentRecord(
        agent_id=response["agent_id"],
        name=response.get("name") or "",
        conversation_config=response.get("conversation_config") or {},
        platform_settings=response.get("platform_settings") or {},
        tags=list(response.get("tags") or []),
        created_at_unix=int(metadata.get("created_at_unix_secs") or 0),
    )


def document_name(
    name: str | None, source_type: str, text: str | None, url: str | None, file_name: str | None
) -> str:
    """The name we send upstream: always explicit, so a retried command can find the document."""
    if name:
        return name
    if source_type == "url" and url:
        return url
    if source_type == "file" and file_name:
        return file_name
    first_line = (text or "").strip().splitlines()[0][:50].strip() if (text or "").strip() else ""
    return first_line or "Untitled"


def has_tag(agent: JSON, tag: str) -> bool:
    return tag in (agent.get("tags") or [])


def tool_secret_id(tool: JSON, auth_header: str) -> str | None:
    """The secret id a tool sends in `auth_header`, if any (header names compare case-insensitively)."""
    headers = ((tool.get("tool_config") or {}).get("api_schema") or {}).get("request_headers") or {}
    for name, value in headers.items():
        if name.lower() == auth_header.lower() and isinstance(value, dict):
            secret_id = value.get("secret_id")
            return str(secret_id) if secret_id else None
    return None
