"""E-mail templates (api-v1.md 5.1-5.4): created and deleted through provisioning, with the
ElevenLabs webhook tool that triggers each; checked here first so a template never refers to a
value nobody supplies."""

from __future__ import annotations

from contracts.provisioning import CreateEmailTemplate, DeleteEmailTemplate, TemplateParameter
from gateway import domain
from gateway.domain import Outcome
from gateway.errors import Unprocessable
from gateway.models import EmailTemplate
from gateway.schemas import EmailTemplateRequest
from gateway.service import GatewayService


def check_template(body: EmailTemplateRequest) -> None:
    """Unprocessable (422) for duplicate parameter names, the reserved name `sessions` (a path
    under /email-templates) or placeholders neither a parameter nor the session provides."""
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


class EmailTemplates:
    """The use cases behind `/email-templates`. Each answers its command's outcome."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service

    async def create(self, body: EmailTemplateRequest) -> Outcome:
        """`check_template`, then Unprocessable when a template of that name exists."""
        check_template(body)
        if await self.service.exists(EmailTemplate, body.name):
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
        return await self.service.execute(command, key=body.name)

    async def delete(self, template_id: str) -> Outcome:
        """The template and its tool. NotFound."""
        template = await self.service.get(EmailTemplate, template_id, "Template not found")
        command = DeleteEmailTemplate(template_id=template_id, tool_id=template.tool_id)
        return await self.service.execute(command, key=template_id)
