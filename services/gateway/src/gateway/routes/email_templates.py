"""E-mail templates (api-v1.md 5.1-5.4) and, beyond the spec, the e-mails agents sent."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse

from gateway import views
from gateway.email_templates import EmailTemplates
from gateway.models import Email, EmailTemplate
from gateway.responses import WRITE_RESPONSES, Done, EmailList, TemplateList, TemplateOut
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import EmailTemplateRequest

router = api_router()


@router.post(
    "/email-templates", tags=["email-templates"], response_model=TemplateOut, responses=WRITE_RESPONSES
)
async def create_template(body: EmailTemplateRequest, service: Service) -> JSONResponse:
    return respond(await EmailTemplates(service).create(body))


@router.get("/email-templates", tags=["email-templates"], response_model=TemplateList)
async def list_templates(
    service: Service, page_size: PageSize = 100, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(EmailTemplate, cursor, page_size)
    templates = [views.template_summary_view(t) for t in rows]
    return {"templates": templates, "count": len(templates), "cursor": next_cursor}


@router.get("/email-templates/{template_id}", tags=["email-templates"], response_model=TemplateOut)
async def get_template(template_id: str, service: Service) -> dict[str, Any]:
    return views.template_view(await service.get(EmailTemplate, template_id, "Template not found"))


@router.delete(
    "/email-templates/{template_id}", tags=["email-templates"], response_model=Done, responses=WRITE_RESPONSES
)
async def delete_template(template_id: str, service: Service) -> JSONResponse:
    return respond(await EmailTemplates(service).delete(template_id))


@router.get("/emails", tags=["email-templates"], response_model=EmailList)
async def list_emails(
    service: Service,
    page_size: PageSize = 30,
    cursor: str | None = None,
    conversation_id: str | None = None,
    status: Literal["sent", "failed"] | None = None,
) -> dict[str, Any]:
    filters = {
        k: v for k, v in {"conversation_id": conversation_id, "status": status}.items() if v is not None
    }
    rows, next_cursor = await service.page(Email, cursor, page_size, filters)
    return {"emails": [views.email_view(e) for e in rows], "cursor": next_cursor}
