"""Tools (api-v1.md section 3)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from contracts.provisioning import (
    CreateCallTool,
    CreateEcommerceTools,
    CreateWebhookTool,
    DeleteTool,
    RotateToolToken,
)
from gateway import views
from gateway.models import Tool
from gateway.responses import (
    WRITE_RESPONSES,
    Done,
    EcommerceToolsOut,
    ToolCreatedOut,
    ToolList,
    ToolOut,
    ToolTokenRotatedOut,
)
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import EcommerceToolsRequest, WebhookToolRequest

router = api_router()


@router.post("/tools/ecommerce", tags=["tools"], response_model=EcommerceToolsOut, responses=WRITE_RESPONSES)
async def create_ecommerce_tools(body: EcommerceToolsRequest, service: Service) -> JSONResponse:
    return respond(await service.execute(CreateEcommerceTools(webhook_base_url=body.webhook_base_url)))


@router.post("/tools/callback", tags=["tools"], response_model=ToolCreatedOut, responses=WRITE_RESPONSES)
async def create_callback_tool(body: EcommerceToolsRequest, service: Service) -> JSONResponse:
    """Beyond the spec: the `schedule_callback` tool. The agent calls it when the callee asks to
    be called back at a time; the time (ISO 8601 or their words, read in their zone) is booked as
    one extra attempt of the campaign recipient (inside the calling window, not counted against
    `retry_count`), or a follow-up call for a single call; the answer tells the agent what was booked."""
    command = CreateCallTool(kind="callback", webhook_base_url=body.webhook_base_url)
    return respond(await service.execute(command))


@router.post("/tools/opt-out", tags=["tools"], response_model=ToolCreatedOut, responses=WRITE_RESPONSES)
async def create_opt_out_tool(body: EcommerceToolsRequest, service: Service) -> JSONResponse:
    """Beyond the spec: the `opt_out` tool. The agent calls it when the callee says "do not call
    me again": the number joins the do-not-call list with the conversation as its source and the
    campaign recipient ends as `opted_out`."""
    command = CreateCallTool(kind="opt_out", webhook_base_url=body.webhook_base_url)
    return respond(await service.execute(command))


@router.post("/tools/webhook", tags=["tools"], response_model=ToolCreatedOut, responses=WRITE_RESPONSES)
async def create_webhook_tool(body: WebhookToolRequest, service: Service) -> JSONResponse:
    return respond(await service.execute(CreateWebhookTool(**body.model_dump())))


@router.get("/tools", tags=["tools"], response_model=ToolList)
async def list_tools(service: Service, page_size: PageSize = 30, cursor: str | None = None) -> dict[str, Any]:
    rows, next_cursor = await service.page(Tool, cursor, page_size)
    return {
        "tools": [views.tool_view(t, views.TOOL_SUMMARY_FIELDS) for t in rows],
        "cursor": next_cursor,
    }


@router.get("/tools/{tool_id}", tags=["tools"], response_model=ToolOut)
async def get_tool(tool_id: str, service: Service) -> dict[str, Any]:
    return views.tool_view(await service.get(Tool, tool_id, "Tool not found"))


@router.delete("/tools/{tool_id}", tags=["tools"], response_model=Done, responses=WRITE_RESPONSES)
async def delete_tool(tool_id: str, service: Service) -> JSONResponse:
    await service.get(Tool, tool_id, "Tool not found")
    return respond(await service.execute(DeleteTool(tool_id=tool_id), key=tool_id))


@router.post(
    "/tools/{tool_id}/rotate-token",
    tags=["tools"],
    response_model=ToolTokenRotatedOut,
    responses=WRITE_RESPONSES,
)
async def rotate_tool_token(tool_id: str, service: Service) -> JSONResponse:
    """Beyond the spec: a new token for an e-commerce or e-mail template tool (its config upstream
    points at a new workspace secret); the previous token keeps working for
    PROVISIONING_TOOL_TOKEN_GRACE_S, then tool-webhooks refuses it. 422 for a tool without one."""
    await service.get(Tool, tool_id, "Tool not found")
    return respond(await service.execute(RotateToolToken(tool_id=tool_id), key=tool_id))
