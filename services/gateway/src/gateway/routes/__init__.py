"""REST routes under /api/v1, one module per resource."""

from fastapi import APIRouter

from gateway.routes import (
    admin,
    agents,
    api_keys,
    batch_calling,
    calls,
    email_templates,
    knowledge_base,
    operations,
    phone_numbers,
    progress,
    sessions,
    tools,
    webhooks,
)

# sessions before any future /email-templates/{template_id} route, so "sessions" is not taken for an id.
ROUTERS: list[APIRouter] = [
    tools.router,
    knowledge_base.router,
    agents.router,
    sessions.router,
    email_templates.router,
    phone_numbers.router,
    calls.router,
    # Before batch_calling: /batch-calling/events would otherwise match /batch-calling/{job_id}.
    progress.router,
    batch_calling.router,
    operations.router,
    admin.router,
    api_keys.router,
    webhooks.router,
]
INTERNAL: list[APIRouter] = [operations.internal]
