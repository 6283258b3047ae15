"""Customer sessions (api-v1.md section 5.5): who is on a conversation, for e-mail personalisation."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from gateway import views
from gateway.models import CustomerSession
from gateway.responses import WRITE_RESPONSES, Done, SessionList, SessionOut, SessionStoredOut
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import CustomerSessionRequest
from gateway.sessions import Sessions

router = api_router()


@router.post(
    "/email-templates/sessions", tags=["sessions"], response_model=SessionStoredOut, responses=WRITE_RESPONSES
)
async def store_session(body: CustomerSessionRequest, service: Service) -> JSONResponse:
    return respond(await Sessions(service).store(body))


@router.get(
    "/email-templates/sessions",
    tags=["sessions"],
    response_model=SessionList,
    response_model_exclude_unset=True,
)
async def list_sessions(
    service: Service, page_size: PageSize = 100, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(CustomerSession, cursor, page_size)
    return {"sessions": [views.session_view(s) for s in rows], "count": len(rows), "cursor": next_cursor}


@router.get(
    "/email-templates/sessions/{conversation_id}",
    tags=["sessions"],
    response_model=SessionOut,
    response_model_exclude_unset=True,
)
async def get_session(conversation_id: str, service: Service) -> dict[str, Any]:
    return views.session_view(await service.get(CustomerSession, conversation_id, "Session not found"))


@router.delete(
    "/email-templates/sessions/{conversation_id}",
    tags=["sessions"],
    response_model=Done,
    responses=WRITE_RESPONSES,
)
async def delete_session(conversation_id: str, service: Service) -> JSONResponse:
    return respond(await Sessions(service).delete(conversation_id))
