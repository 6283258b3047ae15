"""Gateway wiring: FastAPI app, lifespan, error format, correlation ids, health, metrics, docs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import Counter, Histogram

from bus.context import CORRELATION_HEADER, bind_correlation_id
from bus.heap import freeze_startup_heap
from bus.http_errors import install_error_format
from bus.limits import MessageTooLarge
from bus.ops import ops_router
from gateway import console, docs, handlers, routes
from gateway.bootstrap import Container
from gateway.errors import ApiError, PayloadTooLarge
from gateway.guard import RequestGuard
from gateway.idempotency import IdempotencyMiddleware
from gateway.responses import Health
from gateway.settings import VERSION

log = structlog.get_logger("gateway")

HTTP_REQUESTS = Counter(
    "switchboard_http_requests_total", "HTTP requests.", ["service", "method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "switchboard_http_request_seconds", "HTTP request latency.", ["service", "method", "route"]
)


def create_app(container: Container) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await container.waiter.start()
        await container.changes.start()
        await container.bus.start(topics=handlers.topics_used())
        container.retention.start()
        await asyncio.to_thread(container.numbers.warm)
        freeze_startup_heap()
        log.info("gateway.started", port=container.settings.port)
        try:
            yield
        finally:
            await container.retention.stop()
            await asyncio.to_thread(container.numbers.close)
            await container.bus.stop()
            await container.changes.stop()
            await container.waiter.stop()
            await container.http.aclose()
            await container.engine.dispose()

    app = FastAPI(
        title="Switchboard API",
        version=VERSION,
        description=(
            "Run ElevenLabs voice agents at business scale. "
            "Send `Authorization: Bearer <key>` or `X-API-Key`."
        ),
        lifespan=lifespan,
        # Our own /docs route instead (`_install_ops_routes`): FastAPI's loads Swagger UI from a CDN.
        docs_url=None,
    )
    app.state.service = container.service
    app.state.access = container.access
    app.state.changes = container.changes
    app.state.numbers = container.numbers
    for router in (*routes.ROUTERS, *routes.INTERNAL):
        app.include_router(router)
    console.install(app)
    _install_error_handlers(app)
    # Registered before the correlation middleware so that one wraps it (outermost runs first).
    app.middleware("http")(IdempotencyMiddleware(container.uow, container.settings.idempotency_window))
    # Outside the idempotency middleware (which reads the body), inside the correlation one.
    app.add_middleware(RequestGuard, settings=container.settings, access=container.access)
    _install_middleware(app)
    _install_ops_routes(app, container)
    # A server span per request; the trace continues over Kafka (see bus.tracing).
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if console.is_console(request):  # a person reads it: a page, not the error format
            return console.error_page(request, exc.error, exc.status_code)
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(MessageTooLarge)
    async def too_large(_: Request, exc: MessageTooLarge) -> JSONResponse:
        # The command would not fit on the bus (BUS_MAX_MESSAGE_BYTES): refused before it is queued.
        return JSONResponse(PayloadTooLarge("Payload too large", str(exc)).body(), status_code=413)

    install_error_format(app, "gateway")


def _install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def correlate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        correlation_id = bind_correlation_id(request.headers.get(CORRELATION_HEADER))
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels("gateway", request.method, path, str(response.status_code)).inc()
        HTTP_SECONDS.labels("gateway", request.method, path).observe(time.perf_counter() - started)
        response.headers[CORRELATION_HEADER] = correlation_id
        return response


def _install_ops_routes(app: FastAPI, container: Container) -> None:
    @app.get("/health", tags=["health"], response_model=Health)
    async def health() -> dict[str, Any]:
        return {
            "status": "healthy",
            "api_accessible": await container.elevenlabs_reachable(),
            "version": VERSION,
        }

    app.include_router(ops_router(container.bus, container.engine, health=False))  # its own /health above

    app.mount(docs.STATIC_PATH, docs.static_files(), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def api_docs(request: Request) -> HTMLResponse:
        # The root path as FastAPI's own /docs route honours it (a gateway mounted under a prefix).
        root_path = request.scope.get("root_path", "").rstrip("/")
        return docs.swagger_html(app.openapi_url or "/openapi.json", f"{app.title} - Swagger UI", root_path)

    @app.get("/docs/events", include_in_schema=False)
    async def events_docs(request: Request) -> HTMLResponse:
        return HTMLResponse(docs.asyncapi_html(request.scope.get("root_path", "").rstrip("/")))

    @app.get("/docs/events.json", include_in_schema=False)
    async def events_docs_json() -> Response:
        return Response(docs.asyncapi_json(), media_type="application/json")
