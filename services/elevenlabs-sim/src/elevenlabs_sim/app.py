"""Application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from elevenlabs_sim import openapi
from elevenlabs_sim.middleware import SimMiddleware
from elevenlabs_sim.routers import agents, knowledge_base, secrets, sim_control, tools, workspace
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
]


def create_app(settings: SimSettings | None = None) -> FastAPI:
    settings = settings or SimSettings()
    state = SimState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Parse the spec subset up front so the first request does not pay for it.
        openapi.spec()
        yield

    app = FastAPI(title="ElevenLabs API simulator", version="0.1.0", lifespan=lifespan)
    app.state.sim = state
    app.state.settings = settings
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(sim_control.router)
    app.add_middleware(SimMiddleware, state=state)
    return app
