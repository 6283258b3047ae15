"""Administration: register the ElevenLabs post-call webhook for a public URL."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from contracts import topics
from contracts.webhooks import RegisterPostCallWebhook
from gateway.responses import WRITE_RESPONSES, WebhookRegisteredOut
from gateway.routes.deps import Service, api_router, respond
from gateway.schemas import RegisterWebhookRequest

router = api_router()


@router.post(
    "/admin/webhooks/post-call",
    tags=["admin"],
    response_model=WebhookRegisteredOut,
    responses=WRITE_RESPONSES,
)
async def register_post_call_webhook(body: RegisterWebhookRequest, service: Service) -> JSONResponse:
    """Creates the workspace webhook at `{public_url}/webhook/elevenlabs/post-call` and keeps its secret."""
    command = RegisterPostCallWebhook(public_url=body.public_url)
    return respond(await service.execute(command, topic=topics.WEBHOOK_COMMANDS))
