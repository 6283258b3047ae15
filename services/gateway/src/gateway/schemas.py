"""REST request bodies (api-v1.md). Field rules here give clear 422s before anything is published."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from contracts.provisioning import ToolParameter


def _http_url(value: str) -> str:
    value = value.strip()
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("must be an http(s) URL")
    return value


class EcommerceToolsRequest(BaseModel):
    webhook_base_url: str = Field(description="Public base URL ending in /api/v1 that reaches Switchboard.")

    _url = field_validator("webhook_base_url")(_http_url)


class WebhookToolRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str = Field(min_length=1, max_length=2000)
    webhook_url: str
    http_method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    parameters: list[ToolParameter] = Field(default_factory=list)

    _url = field_validator("webhook_url")(_http_url)


class TextDocumentRequest(BaseModel):
    text: str = Field(min_length=1, max_length=5_000_000)
    name: str | None = Field(default=None, max_length=1000)
    parent_folder_id: str | None = None


class UrlDocumentRequest(BaseModel):
    url: str
    name: str | None = Field(default=None, max_length=1000)
    parent_folder_id: str | None = None

    _url = field_validator("url")(_http_url)


class CreateAgentRequest(BaseModel):
    name: str = Field(min_length=1, max_length=1000)
    language: str | None = Field(default=None, min_length=2, max_length=10)
    voice_id: str | None = None
    first_message: str | None = None
    system_prompt: str | None = None
    conversation_config: dict[str, Any] | None = None
    tool_ids: list[str] = Field(default_factory=list)
    knowledge_base_ids: list[str] = Field(default_factory=list)


class UpdateAgentRequest(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=1000)
    conversation_config: dict[str, Any] | None = None


class UpdatePromptRequest(BaseModel):
    first_message: str | None = None
    language: str | None = Field(default=None, min_length=2, max_length=10)
    system_prompt: str | None = None
    tool_ids: list[str] | None = None
    knowledge_base_ids: list[str] | None = None
