"""Application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from elevenlabs_sim import lifecycle, openapi
from elevenlabs_sim.middleware import SimMiddleware
from elevenlabs_sim.routers import (
    agents,
    calls,
    conversations,
    knowledge_base,
    phone_numbers,
    secrets,
    sim_calls,
    sim_control,
    tools,
    workspace,
)
from elevenlabs_sim.settings import SimSettings
from elevenlabs_sim.state import SimState

# Routers serving upstream paths; ``scripts/extract_spec.py`` derives the spec subset from these,
# so each router must carry its full upstream prefix itself.
API_ROUTERS = [
    tools.router,
    secrets.router,
    knowledge_base.router,
    agents.router,
    workspace.webhooks_router,
    workspace.settings_router,
    phone_numbers.router,
    calls.twilio_router,
    calls.sip_router,
    conversations.router,
]


def create_app(settings: SimSettings | None = None) -> FastAPI:
    settings = settings or SimSettings()
    state = SimState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Parse the spec subset up front so the first request does not pay for it.
        openapi.spec()
        yield
        # Simulated calls run as tasks in this loop; stop them (and their webhooks) on shutdown.
        await lifecycle.shutdown(state)

    app = FastAPI(title="ElevenLabs API simulator", version="0.1.0", lifespan=lifespan)
    app.state.sim = state
    app.state.settings = settings
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(sim_control.router)
    app.include_router(sim_calls.router)
    app.add_middleware(SimMiddleware, state=state)
    return app
