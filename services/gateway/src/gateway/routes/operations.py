"""Pending writes (beyond the spec) and the signed upload URLs provisioning fetches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.knowledge_base import KnowledgeBase
from gateway.responses import OperationOut
from gateway.routes.deps import Service, api_router

router = api_router()
internal = APIRouter()


@router.get("/operations/{operation_id}", tags=["operations"], response_model=OperationOut)
async def get_operation(operation_id: str, service: Service) -> dict[str, Any]:
    return await service.operation(operation_id)


@internal.get("/internal/uploads/{upload_id}", include_in_schema=False)
async def get_upload(upload_id: str, service: Service, expires: int = 0, sig: str = "") -> Response:
    upload = await KnowledgeBase(service).upload(upload_id, expires, sig)
    return Response(upload.content, media_type=upload.content_type)
