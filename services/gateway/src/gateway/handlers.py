"""HTTP routes (parse, call one use case, answer) and the bus subscriber that projects events."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from bus.runtime import Bus
from contracts import topics
from contracts.provisioning import (
    CreateAgent,
    CreateEcommerceTools,
    CreateKnowledgeDocument,
    CreateWebhookTool,
    DeleteAgent,
    DeleteKnowledgeDocument,
    DeleteTool,
    ProvisioningCommand,
    ProvisioningEvent,
    UpdateAgent,
)
from gateway import domain
from gateway.domain import Outcome
from gateway.errors import BadRequest, NotFound, Unauthorized, Unprocessable
from gateway.models import Agent, KnowledgeDocument, Tool
from gateway.schemas import (
    CreateAgentRequest,
    EcommerceToolsRequest,
    TextDocumentRequest,
    UpdateAgentRequest,
    UpdatePromptRequest,
    UrlDocumentRequest,
    WebhookToolRequest,
)
from gateway.service import GatewayService


def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.service.settings.api_key_list
    auth = request.headers.get("authorization", "")
    presented = (
        auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    )
    if not presented or not any(hmac.compare_digest(presented.encode(), k.encode()) for k in keys):
        raise Unauthorized("Authentication failed", "Missing or invalid API key")


Service = Annotated[GatewayService, Depends(get_service)]
PageSize = Annotated[int, Query(ge=1, le=100)]

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)])
internal = APIRouter()


def respond(outcome: Outcome) -> JSONResponse:
    return JSONResponse(outcome.body, status_code=outcome.status_code)


# ---- tools -----------------------------------------------------------------------------------


@router.post("/tools/ecommerce", tags=["tools"])
async def create_ecommerce_tools(body: EcommerceToolsRequest, service: Service) -> JSONResponse:
    return respond(await service.execute(CreateEcommerceTools(webhook_base_url=body.webhook_base_url)))


@router.post("/tools/webhook", tags=["tools"])
async def create_webhook_tool(body: WebhookToolRequest, service: Service) -> JSONResponse:
    return respond(await service.execute(CreateWebhookTool(**body.model_dump())))


@router.get("/tools", tags=["tools"])
async def list_tools(service: Service, page_size: PageSize = 30, cursor: str | None = None) -> dict[str, Any]:
    rows, next_cursor = await service.page(Tool, cursor, page_size)
    return {
        "tools": [{"tool_id": t.tool_id, "name": t.name, "type": t.type} for t in rows],
        "cursor": next_cursor,
    }


@router.get("/tools/{tool_id}", tags=["tools"])
async def get_tool(tool_id: str, service: Service) -> dict[str, Any]:
    t = await service.get(Tool, tool_id, "Tool not found")
    return {
        "tool_id": t.tool_id,
        "name": t.name,
        "description": t.description,
        "type": t.type,
        "tool_config": t.tool_config,
        "created_at_unix": t.created_at_unix,
    }


@router.delete("/tools/{tool_id}", tags=["tools"])
async def delete_tool(tool_id: str, service: Service) -> JSONResponse:
    await service.get(Tool, tool_id, "Tool not found")
    return respond(await service.execute(DeleteTool(tool_id=tool_id), key=tool_id))


# ---- knowledge base --------------------------------------------------------------------------


@router.post("/knowledge-base/text", tags=["knowledge-base"])
async def create_text_document(body: TextDocumentRequest, service: Service) -> JSONResponse:
    return respond(await service.execute(CreateKnowledgeDocument(source_type="text", **body.model_dump())))


@router.post("/knowledge-base/url", tags=["knowledge-base"])
async def create_url_document(body: UrlDocumentRequest, service: Service) -> JSONResponse:
    return respond(await service.execute(CreateKnowledgeDocument(source_type="url", **body.model_dump())))


@router.post("/knowledge-base/file", tags=["knowledge-base"])
async def create_file_document(
    service: Service,
    file: Annotated[UploadFile, File()],
    name: Annotated[str | None, Form()] = None,
    parent_folder_id: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    return respond(await _file_document(service, file, name, parent_folder_id))


@router.post("/knowledge-base/ingest", tags=["knowledge-base"])
async def ingest_document(
    service: Service,
    source_type: Annotated[str, Form()],
    text: Annotated[str | None, Form()] = None,
    url: Annotated[str | None, Form()] = None,
    file: Annotated[UploadFile | None, File()] = None,
    name: Annotated[str | None, Form()] = None,
    parent_folder_id: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    if source_type == "text":
        if not text:
            raise Unprocessable("Validation error", "text is required when source_type is text")
        body = TextDocumentRequest(text=text, name=name, parent_folder_id=parent_folder_id)
        return respond(
            await service.execute(CreateKnowledgeDocument(source_type="text", **body.model_dump()))
        )
    if source_type == "url":
        if not url:
            raise Unprocessable("Validation error", "url is required when source_type is url")
        url_body = UrlDocumentRequest(url=url, name=name, parent_folder_id=parent_folder_id)
        return respond(
            await service.execute(CreateKnowledgeDocument(source_type="url", **url_body.model_dump()))
        )
    if source_type == "file":
        if file is None:
            raise Unprocessable("Validation error", "file is required when source_type is file")
        return respond(await _file_document(service, file, name, parent_folder_id))
    raise Unprocessable("Validation error", "source_type must be one of: text, url, file")


async def _file_document(
    service: Service, file: UploadFile, name: str | None, parent_folder_id: str | None
) -> Outcome:
    limit = service.settings.kb_max_upload_bytes
    # Read one byte past the limit so an oversized upload is refused without buffering all of it.
    content = await file.read(limit + 1)
    staged = await service.stage_upload(file.filename or "upload", content)
    command = staged.model_copy(update={"name": name or file.filename, "parent_folder_id": parent_folder_id})
    return await service.execute(command)


def _document_view(d: KnowledgeDocument) -> dict[str, Any]:
    return {
        "id": d.document_id,
        "name": d.name,
        "type": d.type,
        "status": d.status,
        "created_at_unix": d.created_at_unix,
    }


@router.get("/knowledge-base", tags=["knowledge-base"])
async def list_documents(
    service: Service, page_size: PageSize = 30, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(KnowledgeDocument, cursor, page_size)
    return {"documents": [_document_view(d) for d in rows], "cursor": next_cursor}


@router.get("/knowledge-base/{document_id}", tags=["knowledge-base"])
async def get_document(document_id: str, service: Service) -> dict[str, Any]:
    d = await service.get(KnowledgeDocument, document_id, "Document not found")
    return {"document_id": d.document_id, **_document_view(d)}


@router.delete("/knowledge-base/{document_id}", tags=["knowledge-base"])
async def delete_document(document_id: str, service: Service) -> JSONResponse:
    await service.get(KnowledgeDocument, document_id, "Document not found")
    return respond(await service.execute(DeleteKnowledgeDocument(document_id=document_id), key=document_id))


# ---- agents ----------------------------------------------------------------------------------


async def _check_references(service: GatewayService, tool_ids: list[str], document_ids: list[str]) -> None:
    missing_tools = await service.missing_ids(Tool, tool_ids)
    if missing_tools:
        raise NotFound(f"Tool not found: {', '.join(missing_tools)}")
    missing_docs = await service.missing_ids(KnowledgeDocument, document_ids)
    if missing_docs:
        raise NotFound(f"Document not found: {', '.join(missing_docs)}")


@router.post("/agents", tags=["agents"])
async def create_agent(body: CreateAgentRequest, service: Service) -> JSONResponse:
    await _check_references(service, body.tool_ids, body.knowledge_base_ids)
    return respond(await service.execute(CreateAgent(**body.model_dump())))


@router.get("/agents", tags=["agents"])
async def list_agents(
    service: Service, page_size: PageSize = 30, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(Agent, cursor, page_size)
    agents = []
    for a in rows:
        agent_cfg = a.conversation_config.get("agent", {})
        summary = {k: agent_cfg[k] for k in ("language", "first_message") if k in agent_cfg}
        agents.append({"agent_id": a.agent_id, "name": a.name, "conversation_config": {"agent": summary}})
    return {"agents": agents, "cursor": next_cursor}


@router.get("/agents/{agent_id}", tags=["agents"])
async def get_agent(agent_id: str, service: Service) -> dict[str, Any]:
    a = await service.get(Agent, agent_id, "Agent not found")
    return {"agent_id": a.agent_id, "name": a.name, "conversation_config": a.conversation_config}


@router.patch("/agents/{agent_id}", tags=["agents"])
async def update_agent(agent_id: str, body: UpdateAgentRequest, service: Service) -> JSONResponse:
    await service.get(Agent, agent_id, "Agent not found")
    if body.name is None and body.conversation_config is None:
        raise BadRequest("Nothing to update", "Provide name and/or conversation_config")
    return respond(await service.execute(UpdateAgent(agent_id=agent_id, **body.model_dump()), key=agent_id))


@router.patch("/agents/{agent_id}/prompt", tags=["agents"])
async def update_agent_prompt(agent_id: str, body: UpdatePromptRequest, service: Service) -> JSONResponse:
    await service.get(Agent, agent_id, "Agent not found")
    fields = body.model_dump(exclude_none=True)
    if not fields:
        raise BadRequest(
            "Nothing to update",
            "Provide any of first_message, language, system_prompt, tool_ids, knowledge_base_ids",
        )
    await _check_references(service, body.tool_ids or [], body.knowledge_base_ids or [])
    return respond(await service.execute(UpdateAgent(agent_id=agent_id, **fields), key=agent_id))


@router.delete("/agents/{agent_id}", tags=["agents"])
async def delete_agent(agent_id: str, service: Service) -> JSONResponse:
    await service.get(Agent, agent_id, "Agent not found")
    return respond(await service.execute(DeleteAgent(agent_id=agent_id), key=agent_id))


# ---- operations ------------------------------------------------------------------------------


@router.get("/operations/{operation_id}", tags=["operations"])
async def get_operation(operation_id: str, service: Service) -> dict[str, Any]:
    return await service.operation(operation_id)


# ---- internal: uploads fetched by provisioning (signed URL, no API key) ----------------------


@internal.get("/internal/uploads/{upload_id}", include_in_schema=False)
async def get_upload(upload_id: str, service: Service, expires: int = 0, sig: str = "") -> Response:
    upload = await service.upload(upload_id, expires, sig)
    return Response(upload.content, media_type=upload.content_type)


# ---- bus -------------------------------------------------------------------------------------


def subscribe(bus: Bus, service: GatewayService) -> None:
    """Project provisioning events into the read models (one consumer group for all replicas)."""
    bus.subscribe(topics.PROVISIONING_EVENTS, ProvisioningEvent, service.project)
    # A command that was dead-lettered will never have an outcome event: answer it as failed.
    bus.subscribe(
        topics.dead_letter(topics.PROVISIONING_COMMANDS), ProvisioningCommand, service.command_dead_lettered
    )


__all__ = ["domain", "internal", "router", "subscribe"]
