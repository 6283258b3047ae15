"""ASGI app: the webhook routes, the bus for the process lifetime, health and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from bus.heap import freeze_startup_heap
from bus.http_errors import install_error_format
from bus.ops import ops_router
from tool_webhooks import callback_time, handlers
from tool_webhooks.bootstrap import Container, bootstrap, run_migrations
from tool_webhooks.settings import Settings


def create_app(container: Container | None = None, *, migrate: bool = True) -> FastAPI:
    box = container or bootstrap()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await asyncio.to_thread(run_migrations, box.settings)
        await box.start()
        freeze_startup_heap()
        warming = asyncio.create_task(asyncio.to_thread(callback_time.warm_up))  # readiness need not wait
        try:
            yield
        finally:
            warming.cancel()
            await box.stop()

    app = FastAPI(title="switchboard-tool-webhooks", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_format(app, "tool_webhooks")
    app.include_router(
        handlers.make_router(
            box.service,
            max_body_bytes=box.settings.max_body_bytes,
            spool_memory_bytes=box.settings.spool_memory_bytes,
        )
    )
    app.include_router(handlers.make_tool_router(box.tools, box.calls))

    app.include_router(ops_router(box.bus, box.engine))
    # A server span per tool call or webhook; the trace continues over Kafka (see bus.tracing).
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory tool_webhooks.app:app_from_env`."""
    return create_app(bootstrap(Settings()))
