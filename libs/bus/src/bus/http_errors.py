"""The contract's error format for what any of our FastAPI apps answers on its own: a route that
does not exist (404), a method the path does not take (405, with `Allow`), a request or model
that does not validate (422) and an unexpected exception (500, logged without the values it
carries). Every answer is `{"success": false, "error", "detail"?}` (api-v1.md 12)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from bus.logs import describe_error

log = structlog.get_logger("bus.http_errors")

_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def install_error_format(app: FastAPI, service: str) -> None:
    """Register the handlers on `app`; a 500 is logged as `<service>.unhandled_error`."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"success": False, "error": "Validation error", "detail": problems(exc.errors())},
            status_code=422,
        )

    @app.exception_handler(ValidationError)
    async def model_error(_: Request, exc: ValidationError) -> JSONResponse:
        # A model built inside a route (from form fields, say): the same 422.
        return JSONResponse(
            {"success": False, "error": "Validation error", "detail": problems(exc.errors())},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        headers = exc.headers
        if exc.status_code == 405:
            # RFC 9110: a 405 lists every method the path takes. Starlette's names only those of
            # the first route matching the path (POST /agents, not GET /agents).
            headers = {"Allow": ", ".join(allowed_methods(request))}
        return JSONResponse({"success": False, "error": error}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> Response:
        # The client closed the connection while its body was read: a browser cancelling a request
        # it replaced (the console's previews do), not our fault; nobody reads the answer. nginx
        # logs these as 499, and so do we, quietly.
        log.info(f"{service}.client_disconnected", method=request.method, path=request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception(f"{service}.unhandled_error", error=describe_error(exc))
        return JSONResponse(
            {
                "success": False,
                "error": "Internal server error",
                "detail": "See the server logs for this request",
            },
            status_code=500,
        )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path (each route asked as the router would). A path
    the API document names literally is that resource: /batch-calling/submit takes POST, although
    GET /batch-calling/{job_id} would take it for a job id."""
    documented = request.app.openapi().get("paths", {}).get(request.url.path)
    if documented:
        return [method for method in _METHODS if method.lower() in documented]
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


def problems(errors: Sequence[Any]) -> str:
    """`loc: msg; …` of validation errors (never their input values)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}" for err in errors
    )
