"""E-mail templates (api-v1.md 5.1-5.4) and, beyond the spec, the e-mails agents sent."""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse

from contracts.provisioning import CreateEmailTemplate, DeleteEmailTemplate, TemplateParameter
from gateway import domain, views
from gateway.errors import Unprocessable
from gateway.models import Email, EmailTemplate
from gateway.responses import WRITE_RESPONSES, Done, EmailList, TemplateList, TemplateOut
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import EmailTemplateRequest

router = api_router()


@router.post(
    "/email-templates", tags=["email-templates"], response_model=TemplateOut, responses=WRITE_RESPONSES
)
async def create_template(body: EmailTemplateRequest, service: Service) -> JSONResponse:
    names = [p.name for p in body.parameters]
    if len(set(names)) != len(names):
        raise Unprocessable("Validation error", "parameter names must be unique")
    if body.name == "sessions":
        raise Unprocessable("Validation error", "'sessions' is reserved; choose another template name")
    undeclared = domain.undeclared_placeholders([body.subject_template, body.body_template], names)
    if undeclared:
        raise Unprocessable(
            "Undeclared template placeholders",
            f"Declare these as parameters or remove them: {', '.join(undeclared)} "
            f"(session placeholders: {', '.join(sorted(domain.SESSION_PLACEHOLDERS))})",
        )
    if await service.exists(EmailTemplate, body.name):
        raise Unprocessable(
            "Template already exists", f"A template named {body.name} exists; delete it first"
        )
    command = CreateEmailTemplate(
        name=body.name,
        description=body.description,
        subject_template=body.subject_template,
        body_template=body.body_template,
        parameters=[TemplateParameter(**p.model_dump()) for p in body.parameters],
        webhook_base_url=body.webhook_base_url,
    )
    return respond(await service.execute(command, key=body.name))


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
    template = await service.get(EmailTemplate, template_id, "Template not found")
    command = DeleteEmailTemplate(template_id=template_id, tool_id=template.tool_id)
    return respond(await service.execute(command, key=template_id))


def email_view(e: Email) -> dict[str, Any]:
    return {
        "email_id": e.email_id,
        "conversation_id": e.conversation_id,
        "template_id": e.template_id,
        "to_email": e.to_email,
        "from_email": e.from_email,
        "subject": e.subject,
        "status": e.status,
        "transport": e.transport,
        "error": e.error,
        "permanent": e.permanent,
        "at_unix": e.at_unix,
    }


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
    return {"emails": [email_view(e) for e in rows], "cursor": next_cursor}
