"""Agents (api-v1.md 6 and 7): create, change and delete them through provisioning, each checked
first against what the read model knows (referenced tools and documents) and against the bus's
message limit, which the agent as ElevenLabs reads it back must fit."""

from __future__ import annotations

import json
from typing import Any

from bus.limits import check_fits, message_size
from contracts.provisioning import CreateAgent, DeleteAgent, UpdateAgent
from elevenlabs_client.agents import deep_merge, prompt_fields
from gateway.domain import Outcome
from gateway.errors import BadRequest, NotFound, PayloadTooLarge
from gateway.models import Agent, KnowledgeDocument, Tool
from gateway.schemas import CreateAgentRequest, UpdateAgentRequest, UpdatePromptRequest
from gateway.service import GatewayService, refuse_if_in_use

#: Room the agent's event needs beyond our command: provisioning publishes the agent as ElevenLabs
#: reads it back (its defaults added: 4.6 KB in the simulator, tens of KB upstream). A command that
#: fits but leaves no room created the agent upstream, then dead-lettered its too-large event (500).
AGENT_READBACK_BYTES = 64 * 1024

#: Room the updated agent's event needs beyond the agent as the read model holds it (ElevenLabs'
#: defaults are already in it): the event's envelope and knowledge-base locators for new ids.
AGENT_UPDATE_MARGIN_BYTES = 16 * 1024


def check_readback_room(command: CreateAgent | UpdateAgent, bus_max_bytes: int) -> None:
    """413 before anything is queued when the agent's read-back event could not fit the bus
    (`bus_max_bytes`: BUS_MAX_MESSAGE_BYTES)."""
    body = command.model_dump_json().encode()
    # Over the bus limit itself: the bus's own refusal (names the limit), as for any other write.
    check_fits(body, limit=bus_max_bytes, what=f"{command.type} message")
    limit = bus_max_bytes - AGENT_READBACK_BYTES
    size = message_size(body)
    if size > limit:
        raise PayloadTooLarge(
            "Payload too large",
            f"The agent's texts take {size} bytes; at most {limit} fit, since the agent as ElevenLabs "
            f"returns it must fit one bus message (BUS_MAX_MESSAGE_BYTES minus {AGENT_READBACK_BYTES})",
        )


def check_update_room(current: Agent, command: UpdateAgent, bus_max_bytes: int) -> None:
    """413 before anything is queued when the agent after this change could not travel as one bus
    message. ElevenLabs merges a PATCH into the stored agent (elevenlabs_client.agents), so a small
    change to a large agent, or a large field added to another, makes an event larger than either:
    such an update was applied upstream, then its event was refused and the read model kept the
    old agent."""
    check_readback_room(command, bus_max_bytes)
    change = deep_merge(
        command.conversation_config or {},
        prompt_fields(
            first_message=command.first_message,
            language=command.language,
            system_prompt=command.system_prompt,
            tool_ids=command.tool_ids,
            knowledge_base=None,  # locators come upstream; the margin covers them
        ),
    )
    after = {
        "name": command.name if command.name is not None else current.name,
        "conversation_config": deep_merge(current.conversation_config, change),
        "platform_settings": current.platform_settings,
        "tags": current.tags,
    }
    size = message_size(json.dumps(after, separators=(",", ":")).encode())
    limit = bus_max_bytes - AGENT_UPDATE_MARGIN_BYTES
    if size > limit:
        raise PayloadTooLarge(
            "Payload too large",
            f"The agent after this change would take {size} bytes; at most {limit} fit, since the "
            f"agent as ElevenLabs returns it must fit one bus message (BUS_MAX_MESSAGE_BYTES minus "
            f"{AGENT_UPDATE_MARGIN_BYTES})",
        )


class Agents:
    """The use cases behind `/agents`. Each answers its command's outcome."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.bus_max_bytes = service.settings.bus_max_message_bytes

    async def _check_references(self, tool_ids: list[str], document_ids: list[str]) -> None:
        missing_tools = await self.service.missing_ids(Tool, tool_ids)
        if missing_tools:
            raise NotFound(f"Tool not found: {', '.join(missing_tools)}")
        missing_docs = await self.service.missing_ids(KnowledgeDocument, document_ids)
        if missing_docs:
            raise NotFound(f"Document not found: {', '.join(missing_docs)}")

    async def create(self, body: CreateAgentRequest) -> Outcome:
        """NotFound for an unknown tool or document; PayloadTooLarge (`check_readback_room`)."""
        await self._check_references(body.tool_ids, body.knowledge_base_ids)
        command = CreateAgent(**body.model_dump())
        check_readback_room(command, self.bus_max_bytes)
        return await self.service.execute(command)

    async def update(self, agent_id: str, body: UpdateAgentRequest) -> Outcome:
        """Name and/or conversation config. NotFound; BadRequest for neither; PayloadTooLarge."""
        current = await self.service.get(Agent, agent_id, "Agent not found")
        if body.name is None and body.conversation_config is None:
            raise BadRequest("Nothing to update", "Provide name and/or conversation_config")
        command = UpdateAgent(agent_id=agent_id, **body.model_dump())
        check_update_room(current, command, self.bus_max_bytes)
        return await self.service.execute(command, key=agent_id)

    async def update_prompt(self, agent_id: str, body: UpdatePromptRequest) -> Outcome:
        """The prompt's fields, tools and documents (api-v1.md 7.2). NotFound (the agent, a tool, a
        document); BadRequest for nothing to change; PayloadTooLarge."""
        current = await self.service.get(Agent, agent_id, "Agent not found")
        fields: dict[str, Any] = body.model_dump(exclude_none=True)
        if not fields:
            raise BadRequest(
                "Nothing to update",
                "Provide any of first_message, language, system_prompt, tool_ids, knowledge_base_ids",
            )
        await self._check_references(body.tool_ids or [], body.knowledge_base_ids or [])
        command = UpdateAgent(agent_id=agent_id, **fields)
        check_update_room(current, command, self.bus_max_bytes)
        return await self.service.execute(command, key=agent_id)

    async def delete(self, agent_id: str) -> Outcome:
        """Delete the agent. NotFound; Conflict while a campaign not yet final calls with it (its
        remaining recipients would all fail "404 Not found")."""
        await self.service.get(Agent, agent_id, "Agent not found")
        await refuse_if_in_use(self.service, "agent", agent_id=agent_id)
        return await self.service.execute(DeleteAgent(agent_id=agent_id), key=agent_id)
