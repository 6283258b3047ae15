"""Agents (api-v1.md sections 6 and 7)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

from bus.limits import check_fits, message_size
from contracts.provisioning import CreateAgent, DeleteAgent, UpdateAgent
from elevenlabs_client.agents import deep_merge, prompt_fields
from gateway import views
from gateway.errors import BadRequest, NotFound, PayloadTooLarge
from gateway.models import Agent, KnowledgeDocument, Tool
from gateway.responses import WRITE_RESPONSES, AgentCreatedOut, AgentList, AgentOut, Done
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import CreateAgentRequest, UpdateAgentRequest, UpdatePromptRequest
from gateway.service import GatewayService

router = api_router()

#: Room the agent's event needs beyond our command: provisioning publishes the agent as ElevenLabs
#: reads it back (its defaults added: 4.6 KB in the simulator, tens of KB upstream). A command that
#: fits but leaves no room created the agent upstream, then dead-lettered its too-large event (500).
AGENT_READBACK_BYTES = 64 * 1024


def _leaves_room_for_readback(command: CreateAgent | UpdateAgent, service: GatewayService) -> None:
    """413 before anything is queued when the agent's read-back event could not fit the bus."""
    body = command.model_dump_json().encode()
    # Over the bus limit itself: the bus's own refusal (names the limit), as for any other write.
    check_fits(body, limit=service.settings.bus_max_message_bytes, what=f"{command.type} message")
    limit = service.settings.bus_max_message_bytes - AGENT_READBACK_BYTES
    size = message_size(body)
    if size > limit:
        raise PayloadTooLarge(
            "Payload too large",
            f"The agent's texts take {size} bytes; at most {limit} fit, since the agent as ElevenLabs "
            f"returns it must fit one bus message (BUS_MAX_MESSAGE_BYTES minus {AGENT_READBACK_BYTES})",
        )


#: Room the updated agent's event needs beyond the agent as the read model holds it (ElevenLabs'
#: defaults are already in it): the event's envelope and knowledge-base locators for new ids.
AGENT_UPDATE_MARGIN_BYTES = 16 * 1024


def _update_leaves_room(current: Agent, command: UpdateAgent, service: GatewayService) -> None:
    """413 before anything is queued when the agent after this change could not travel as one bus
    message. ElevenLabs merges a PATCH into the stored agent (elevenlabs_client.agents), so a small
    change to a large agent, or a large field added to another, makes an event larger than either:
    such an update was applied upstream, then its event was refused and the read model kept the
    old agent."""
    _leaves_room_for_readback(command, service)
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
    limit = service.settings.bus_max_message_bytes - AGENT_UPDATE_MARGIN_BYTES
    if size > limit:
        raise PayloadTooLarge(
            "Payload too large",
            f"The agent after this change would take {size} bytes; at most {limit} fit, since the "
            f"agent as ElevenLabs returns it must fit one bus message (BUS_MAX_MESSAGE_BYTES minus "
            f"{AGENT_UPDATE_MARGIN_BYTES})",
        )


async def _check_references(service: GatewayService, tool_ids: list[str], document_ids: list[str]) -> None:
    missing_tools = await service.missing_ids(Tool, tool_ids)
    if missing_tools:
        raise NotFound(f"Tool not found: {', '.join(missing_tools)}")
    missing_docs = await service.missing_ids(KnowledgeDocument, document_ids)
    if missing_docs:
        raise NotFound(f"Document not found: {', '.join(missing_docs)}")


@router.post("/agents", tags=["agents"], response_model=AgentCreatedOut, responses=WRITE_RESPONSES)
async def create_agent(body: CreateAgentRequest, service: Service) -> JSONResponse:
    await _check_references(service, body.tool_ids, body.knowledge_base_ids)
    command = CreateAgent(**body.model_dump())
    _leaves_room_for_readback(command, service)
    return respond(await service.execute(command))


@router.get("/agents", tags=["agents"], response_model=AgentList)
async def list_agents(
    service: Service, page_size: PageSize = 30, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(Agent, cursor, page_size)
    return {"agents": [views.agent_summary_view(a) for a in rows], "cursor": next_cursor}


@router.get("/agents/{agent_id}", tags=["agents"], response_model=AgentOut)
async def get_agent(agent_id: str, service: Service) -> dict[str, Any]:
    return views.agent_view(await service.get(Agent, agent_id, "Agent not found"))


@router.patch("/agents/{agent_id}", tags=["agents"], response_model=AgentOut, responses=WRITE_RESPONSES)
async def update_agent(agent_id: str, body: UpdateAgentRequest, service: Service) -> JSONResponse:
    current = await service.get(Agent, agent_id, "Agent not found")
    if body.name is None and body.conversation_config is None:
        raise BadRequest("Nothing to update", "Provide name and/or conversation_config")
    command = UpdateAgent(agent_id=agent_id, **body.model_dump())
    _update_leaves_room(current, command, service)
    return respond(await service.execute(command, key=agent_id))


@router.patch(
    "/agents/{agent_id}/prompt", tags=["agents"], response_model=AgentOut, responses=WRITE_RESPONSES
)
async def update_agent_prompt(agent_id: str, body: UpdatePromptRequest, service: Service) -> JSONResponse:
    current = await service.get(Agent, agent_id, "Agent not found")
    fields = body.model_dump(exclude_none=True)
    if not fields:
        raise BadRequest(
            "Nothing to update",
            "Provide any of first_message, language, system_prompt, tool_ids, knowledge_base_ids",
        )
    await _check_references(service, body.tool_ids or [], body.knowledge_base_ids or [])
    command = UpdateAgent(agent_id=agent_id, **fields)
    _update_leaves_room(current, command, service)
    return respond(await service.execute(command, key=agent_id))


@router.delete("/agents/{agent_id}", tags=["agents"], response_model=Done, responses=WRITE_RESPONSES)
async def delete_agent(agent_id: str, service: Service) -> JSONResponse:
    await service.get(Agent, agent_id, "Agent not found")
    return respond(await service.execute(DeleteAgent(agent_id=agent_id), key=agent_id))
