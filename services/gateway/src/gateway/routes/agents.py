"""Agents (api-v1.md sections 6 and 7)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from gateway import views
from gateway.agents import Agents
from gateway.models import Agent
from gateway.responses import WRITE_RESPONSES, AgentCreatedOut, AgentList, AgentOut, Done
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import CreateAgentRequest, UpdateAgentRequest, UpdatePromptRequest

router = api_router()


@router.post("/agents", tags=["agents"], response_model=AgentCreatedOut, responses=WRITE_RESPONSES)
async def create_agent(body: CreateAgentRequest, service: Service) -> JSONResponse:
    return respond(await Agents(service).create(body))


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
    return respond(await Agents(service).update(agent_id, body))


@router.patch(
    "/agents/{agent_id}/prompt", tags=["agents"], response_model=AgentOut, responses=WRITE_RESPONSES
)
async def update_agent_prompt(agent_id: str, body: UpdatePromptRequest, service: Service) -> JSONResponse:
    return respond(await Agents(service).update_prompt(agent_id, body))


@router.delete("/agents/{agent_id}", tags=["agents"], response_model=Done, responses=WRITE_RESPONSES)
async def delete_agent(agent_id: str, service: Service) -> JSONResponse:
    return respond(await Agents(service).delete(agent_id))
