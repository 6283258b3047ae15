"""What every route shares: the service, API-key auth, page size, and answering an outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.domain import Outcome
from gateway.errors import Unauthorized
from gateway.idempotency import api_key_valid, presented_api_key
from gateway.service import GatewayService


def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


def require_api_key(request: Request) -> None:
    keys: list[str] = request.app.state.service.settings.api_key_list
    if not api_key_valid(presented_api_key(request), keys):
        raise Unauthorized("Authentication failed", "Missing or invalid API key")


Service = Annotated[GatewayService, Depends(get_service)]
PageSize = Annotated[int, Query(ge=1, le=100)]


def api_router() -> APIRouter:
    """A router under /api/v1 that requires an API key."""
    return APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_key)])


def respond(outcome: Outcome) -> JSONResponse:
    return JSONResponse(outcome.body, status_code=outcome.status_code)
