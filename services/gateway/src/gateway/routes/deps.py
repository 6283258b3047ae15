"""What every route shares: the services, page size, and answering an outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.auth import AccessService
from gateway.domain import Outcome, retry_after_s
from gateway.numbers import NumberReader
from gateway.responses import ERROR_RESPONSES
from gateway.service import GatewayService


def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


def get_access(request: Request) -> AccessService:
    access: AccessService = request.app.state.access
    return access


Service = Annotated[GatewayService, Depends(get_service)]
Access = Annotated[AccessService, Depends(get_access)]


def get_numbers(request: Request) -> NumberReader:
    numbers: NumberReader = request.app.state.numbers
    return numbers


Numbers = Annotated[NumberReader, Depends(get_numbers)]
PageSize = Annotated[int, Query(ge=1, le=100)]


def api_router() -> APIRouter:
    """A router under /api/v1; gateway.guard lets only requests with an API key reach it. Every
    route's errors are documented as the contract's error format."""
    return APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)


def respond(outcome: Outcome) -> JSONResponse:
    headers = None
    if outcome.status_code == 429:
        # A client that honours Retry-After waits as long as ElevenLabs asked (at least a second).
        headers = {"Retry-After": str(retry_after_s(outcome.body))}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)
