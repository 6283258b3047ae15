"""Commands to and events from the provisioning service (tools, knowledge base, agents).

Payload snapshots (`tool`, `document`, `agent`) are the ElevenLabs resource as last read
upstream, so read models can answer GETs without calling ElevenLabs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Command, CommandFailed, Event

# ---- value objects -------------------------------------------------------------------------


class ToolParameter(BaseModel):
    """One LLM-filled parameter of a webhook tool."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(description="Parameter name, as sent in the request body.")
    type: Literal["string", "integer", "number", "boolean"] = Field(
        default="string", description="JSON type of the value."
    )
    description: str = Field(default="", description="Tells the LLM what to put here.")
    required: bool = Field(default=False, description="Whether the LLM must always provide it.")


class ToolToken(BaseModel):
    """Which token a tool sends to tool-webhooks: what the token names, never the token itself.

    The token is ``v2.<token_id>.<generation>.<signature>`` (`bus.secrets.mint_tool_token`); a
    rotation keeps `token_id` and adds one to `generation`.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    token_id: str = Field(description="The tool's token lineage, named in every token it is given.")
    route: str = Field(description="The tool-webhooks route the tool calls, e.g. `ecommerce/orders`.")
    generation: int = Field(
        ge=1, description="The current token's generation: 1 at creation, +1 per rotation."
    )


class ToolRecord(BaseModel):
    """A workspace tool as Switchboard knows it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tool_id: str = Field(description="ElevenLabs tool id.")
    name: str = Field(description="Tool name the LLM sees.")
    description: str = Field(default="", description="Tool description the LLM sees.")
    type: str = Field(default="webhook", description="ElevenLabs tool type.")
    purpose: Literal["webhook", "ecommerce_products", "ecommerce_orders", "email", "callback", "opt_out"] = (
        Field(default="webhook", description="Why Switchboard created it.")
    )
    tool_config: dict[str, Any] = Field(default_factory=dict, description="Tool config as read upstream.")
    created_at_unix: int = Field(description="Creation time, unix seconds.")
    token: ToolToken | None = Field(
        default=None, description="The token it sends to tool-webhooks (e-commerce and e-mail tools only)."
    )


class KnowledgeDocumentRecord(BaseModel):
    """A knowledge-base document as Switchboard knows it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    document_id: str = Field(description="ElevenLabs document id.")
    name: str = Field(description="Document name.")
    source_type: Literal["text", "url", "file"] = Field(description="How the document was created.")
    type: str = Field(description="ElevenLabs document type (text, url, file).")
    status: str = Field(default="processing", description="Ingestion status: processing or ready.")
    folder_path: list[Any] | None = Field(default=None, description="Folder path upstream, if any.")
    created_at_unix: int = Field(description="Creation time, unix seconds.")


class AgentRecord(BaseModel):
    """An agent snapshot: the GET agent response from ElevenLabs, trimmed to what we serve."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    agent_id: str = Field(description="ElevenLabs agent id.")
    name: str = Field(description="Agent name.")
    conversation_config: dict[str, Any] = Field(default_factory=dict, description="Conversation config.")
    platform_settings: dict[str, Any] = Field(default_factory=dict, description="Platform settings.")
    tags: list[str] = Field(default_factory=list, description="Agent tags upstream.")
    created_at_unix: int = Field(description="Creation time, unix seconds.")


class TemplateParameter(BaseModel):
    """A value the agent supplies when it triggers an e-mail template."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(description="Placeholder name, used as {{name}} in the templates.")
    description: str = Field(default="", description="Tells the LLM what to put here.")
    required: bool = Field(default=False, description="Whether the agent must always provide it.")


class EmailTemplateRecord(BaseModel):
    """An e-mail template and the ElevenLabs webhook tool that triggers it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    template_id: str = Field(description="Template id (its name).")
    name: str = Field(description="Template name; also the tool name the LLM sees.")
    description: str = Field(description="When the agent should send it.")
    subject_template: str = Field(description="Subject with {{placeholders}}.")
    body_template: str = Field(description="Plain-text body with {{placeholders}}.")
    parameters: list[TemplateParameter] = Field(default_factory=list, description="Agent-filled parameters.")
    tool_id: str = Field(description="ElevenLabs tool id of the template's webhook tool.")
    created_at: str = Field(description="Creation time, ISO 8601.")


# ---- commands ------------------------------------------------------------------------------


class CreateWebhookTool(Command):
    """Create a custom webhook tool on ElevenLabs."""

    type: Literal["tool.create_webhook"] = "tool.create_webhook"
    name: str = Field(description="Tool name (letters, digits, _ and -).")
    description: str = Field(description="When the LLM should use the tool.")
    webhook_url: str = Field(description="URL ElevenLabs calls.")
    http_method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        default="POST", description="HTTP method ElevenLabs uses."
    )
    parameters: list[ToolParameter] = Field(default_factory=list, description="LLM-filled parameters.")


class CreateEcommerceTools(Command):
    """Create the `get_products` and `get_orders` webhook tools pointing at tool-webhooks."""

    type: Literal["tool.create_ecommerce"] = "tool.create_ecommerce"
    webhook_base_url: str = Field(description="Public base URL ending in /api/v1 that reaches tool-webhooks.")


class CreateCallTool(Command):
    """Create a call-control tool pointing at tool-webhooks: `callback` (`schedule_callback`: the
    callee asks to be called back at a time) or `opt_out` (`opt_out`: "do not call me again").
    Answered by `ToolCreated` (purpose `callback` / `opt_out`, with its token)."""

    type: Literal["tool.create_call_tool"] = "tool.create_call_tool"
    kind: Literal["callback", "opt_out"] = Field(description="Which tool.")
    webhook_base_url: str = Field(description="Public base URL ending in /api/v1 that reaches tool-webhooks.")


class DeleteTool(Command):
    """Delete a workspace tool."""

    type: Literal["tool.delete"] = "tool.delete"
    tool_id: str = Field(description="ElevenLabs tool id.")


class RotateToolToken(Command):
    """Give a tool that calls tool-webhooks a new token; the previous one keeps working for a grace
    period (PROVISIONING_TOOL_TOKEN_GRACE_S), then tool-webhooks refuses it."""

    type: Literal["tool.rotate_token"] = "tool.rotate_token"
    tool_id: str = Field(description="ElevenLabs tool id.")


class CreateKnowledgeDocument(Command):
    """Create a knowledge-base document from text, a URL or an uploaded file."""

    type: Literal["knowledge_document.create"] = "knowledge_document.create"
    source_type: Literal["text", "url", "file"] = Field(description="Kind of source.")
    name: str | None = Field(default=None, description="Document name; derived from the source if absent.")
    parent_folder_id: str | None = Field(default=None, description="ElevenLabs folder id.")
    text: str | None = Field(default=None, description="Content, when source_type is text.")
    url: str | None = Field(default=None, description="Page to scrape, when source_type is url.")
    file_url: str | None = Field(
        default=None,
        description="Where provisioning downloads the upload (claim check), when source_type is file.",
    )
    file_name: str | None = Field(default=None, description="Original file name of the upload.")
    file_content_type: str | None = Field(default=None, description="Detected MIME type of the upload.")
    file_sha256: str | None = Field(default=None, description="SHA-256 of the upload, checked on download.")


class DeleteKnowledgeDocument(Command):
    """Delete a knowledge-base document."""

    type: Literal["knowledge_document.delete"] = "knowledge_document.delete"
    document_id: str = Field(description="ElevenLabs document id.")


class CreateAgent(Command):
    """Create an agent. Either the simple fields or `conversation_config` (full form) are given."""

    type: Literal["agent.create"] = "agent.create"
    name: str = Field(description="Agent name.")
    language: str | None = Field(default=None, description="Simple form: agent language (ISO 639-1).")
    voice_id: str | None = Field(default=None, description="Simple form: TTS voice id.")
    first_message: str | None = Field(default=None, description="Simple form: greeting.")
    system_prompt: str | None = Field(default=None, description="Simple form: system prompt.")
    conversation_config: dict[str, Any] | None = Field(
        default=None, description="Full form: ElevenLabs conversation_config, merged over the simple fields."
    )
    tool_ids: list[str] = Field(default_factory=list, description="Workspace tools the agent may use.")
    knowledge_base_ids: list[str] = Field(default_factory=list, description="Knowledge-base document ids.")


class UpdateAgent(Command):
    """Update an agent; only fields that are present (not null) change."""

    type: Literal["agent.update"] = "agent.update"
    agent_id: str = Field(description="ElevenLabs agent id.")
    name: str | None = Field(default=None, description="New name.")
    conversation_config: dict[str, Any] | None = Field(
        default=None, description="Partial conversation_config, deep-merged upstream."
    )
    language: str | None = Field(default=None, description="New agent language.")
    first_message: str | None = Field(default=None, description="New greeting.")
    system_prompt: str | None = Field(default=None, description="New system prompt.")
    tool_ids: list[str] | None = Field(default=None, description="Replaces the agent's tool ids.")
    knowledge_base_ids: list[str] | None = Field(default=None, description="Replaces the agent's documents.")


class DeleteAgent(Command):
    """Delete an agent."""

    type: Literal["agent.delete"] = "agent.delete"
    agent_id: str = Field(description="ElevenLabs agent id.")


class CreateEmailTemplate(Command):
    """Create an e-mail template and its webhook tool posting to `{webhook_base_url}/webhook/email/{name}`."""

    type: Literal["email_template.create"] = "email_template.create"
    name: str = Field(description="Template name (letters, digits, _ and -); becomes the template id.")
    description: str = Field(description="When the agent should send it.")
    subject_template: str = Field(description="Subject with {{placeholders}}.")
    body_template: str = Field(description="Plain-text body with {{placeholders}}.")
    parameters: list[TemplateParameter] = Field(default_factory=list, description="Agent-filled parameters.")
    webhook_base_url: str = Field(description="Public base URL ending in /api/v1 that reaches tool-webhooks.")


class DeleteEmailTemplate(Command):
    """Delete an e-mail template and its webhook tool."""

    type: Literal["email_template.delete"] = "email_template.delete"
    template_id: str = Field(description="Template id.")
    tool_id: str | None = Field(default=None, description="Its ElevenLabs tool id, when known.")


ProvisioningCommand = Annotated[
    CreateWebhookTool
    | CreateEcommerceTools
    | CreateCallTool
    | DeleteTool
    | RotateToolToken
    | CreateKnowledgeDocument
    | DeleteKnowledgeDocument
    | CreateAgent
    | UpdateAgent
    | DeleteAgent
    | CreateEmailTemplate
    | DeleteEmailTemplate,
    Field(discriminator="type"),
]

# ---- events --------------------------------------------------------------------------------


class ToolCreated(Event):
    """A webhook tool was created on ElevenLabs."""

    type: Literal["tool.created"] = "tool.created"
    tool: ToolRecord = Field(description="The created tool.")


class EcommerceToolsCreated(Event):
    """The `get_products` and `get_orders` tools were created."""

    type: Literal["ecommerce_tools.created"] = "ecommerce_tools.created"
    products_tool: ToolRecord = Field(description="The get_products tool.")
    orders_tool: ToolRecord = Field(description="The get_orders tool.")


class ToolDeleted(Event):
    """A tool was deleted."""

    type: Literal["tool.deleted"] = "tool.deleted"
    tool_id: str = Field(description="ElevenLabs tool id.")


class ToolTokenRotated(Event):
    """A tool sends a new token (its config upstream points at a new workspace secret)."""

    type: Literal["tool.token_rotated"] = "tool.token_rotated"
    tool_id: str = Field(description="ElevenLabs tool id.")
    tool_config: dict[str, Any] = Field(description="Tool config as read upstream after the change.")
    token: ToolToken = Field(description="The new token's lineage, route and generation.")
    previous_valid_until_unix: int = Field(
        description="Until when (unix seconds) the previous generation is still accepted."
    )


class KnowledgeDocumentCreated(Event):
    """A knowledge-base document was created."""

    type: Literal["knowledge_document.created"] = "knowledge_document.created"
    document: KnowledgeDocumentRecord = Field(description="The created document.")


class KnowledgeDocumentDeleted(Event):
    """A knowledge-base document was deleted."""

    type: Literal["knowledge_document.deleted"] = "knowledge_document.deleted"
    document_id: str = Field(description="ElevenLabs document id.")


class AgentCreated(Event):
    """An agent was created."""

    type: Literal["agent.created"] = "agent.created"
    agent: AgentRecord = Field(description="The agent as read back from ElevenLabs.")


class AgentUpdated(Event):
    """An agent was updated."""

    type: Literal["agent.updated"] = "agent.updated"
    agent: AgentRecord = Field(description="The agent after the update.")


class AgentDeleted(Event):
    """An agent was deleted."""

    type: Literal["agent.deleted"] = "agent.deleted"
    agent_id: str = Field(description="ElevenLabs agent id.")


class EmailTemplateCreated(Event):
    """An e-mail template and its webhook tool were created."""

    type: Literal["email_template.created"] = "email_template.created"
    template: EmailTemplateRecord = Field(description="The template.")
    tool: ToolRecord = Field(description="Its webhook tool.")


class EmailTemplateDeleted(Event):
    """An e-mail template and its webhook tool were deleted."""

    type: Literal["email_template.deleted"] = "email_template.deleted"
    template_id: str = Field(description="Template id.")
    tool_id: str | None = Field(default=None, description="ElevenLabs tool id that was deleted.")


ProvisioningEvent = Annotated[
    ToolCreated
    | EcommerceToolsCreated
    | ToolDeleted
    | ToolTokenRotated
    | KnowledgeDocumentCreated
    | KnowledgeDocumentDeleted
    | AgentCreated
    | AgentUpdated
    | AgentDeleted
    | EmailTemplateCreated
    | EmailTemplateDeleted
    | CommandFailed,
    Field(discriminator="type"),
]
