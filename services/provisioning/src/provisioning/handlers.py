"""Subscribers: decode a provisioning command and hand it to its use case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bus.runtime import Bus
from contracts import topics
from contracts.provisioning import (
    CreateAgent,
    CreateCallTool,
    CreateEcommerceTools,
    CreateEmailTemplate,
    CreateKnowledgeDocument,
    CreateWebhookTool,
    DeleteAgent,
    DeleteEmailTemplate,
    DeleteKnowledgeDocument,
    DeleteTool,
    ProvisioningCommand,
    RotateToolToken,
    UpdateAgent,
)
from provisioning.service import ProvisioningService


def register(bus: Bus, service: ProvisioningService) -> None:
    routes: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
        CreateWebhookTool: service.create_webhook_tool,
        CreateEcommerceTools: service.create_ecommerce_tools,
        CreateCallTool: service.create_call_tool,
        DeleteTool: service.delete_tool,
        RotateToolToken: service.rotate_tool_token,
        CreateKnowledgeDocument: service.create_knowledge_document,
        DeleteKnowledgeDocument: service.delete_knowledge_document,
        CreateAgent: service.create_agent,
        UpdateAgent: service.update_agent,
        DeleteAgent: service.delete_agent,
        CreateEmailTemplate: service.create_email_template,
        DeleteEmailTemplate: service.delete_email_template,
    }

    async def handle(command: Any) -> None:
        """Provisioning commands: tools, knowledge-base documents, agents and e-mail templates."""
        await routes[type(command)](command)

    bus.subscribe(topics.PROVISIONING_COMMANDS, ProvisioningCommand, handle)
