"""The contract's error format for what any of our FastAPI apps answers on its own: a route that
does not exist (404), a method the path does not take (405, with `Allow`), a request or model
that does not validate (422) and an unexpected exception (500, logged without the values it
carries). Every answer is `{"success": false, "error", "detail"}` (api-v1.md 12), `detail` never
empty: `error_body` gives every error path (these handlers and the services' own) that layout."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
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

from bus.db import database_unavailable
from bus.logs import describe_error

log = structlog.get_logger("bus.http_errors")

_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

# What an error means when its raiser said no more: the contract promises a `detail` on every error.
_DEFAULT_DETAIL = {
    400: "The request is malformed",
    401: "Missing or invalid credentials",
    403: "These credentials may not do this",
    404: "No such resource: it does not exist or was deleted",
    405: "This path does not take this method",
    409: "The resource's current state does not allow this request",
    413: "The request body is too large",
    415: "This content type is not accepted here",
    422: "The request does not validate",
    429: "Too many requests; retry later",
    500: "See the server logs for this request",
    503: "The service is unavailable; retry shortly",
}


def default_detail(status: int) -> str:
    """The general `detail` of an error with status `status` (its reason phrase when unlisted)."""
    if status in _DEFAULT_DETAIL:
        return _DEFAULT_DETAIL[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "The request failed"


def error_body(status: int, error: str, detail: object = None) -> dict[str, Any]:
    """`{"success": false, "error", "detail"}`, in that order; a missing or empty `detail` becomes
    the status's general one (`default_detail`)."""
    if detail is None or detail == "" or detail == []:
        detail = default_detail(status)
    return {"success": False, "error": error, "detail": detail}


def install_error_format(app: FastAPI, service: str) -> None:
    """Register the handlers on `app`; a 500 is logged as `<service>.unhandled_error`."""

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(422, "Validation error", problems(exc.errors())), status_code=422)

    @app.exception_handler(ValidationError)
    async def model_error(_: Request, exc: ValidationError) -> JSONResponse:
        # A model built inside a route (from form fields, say): the same 422.
        return JSONResponse(error_body(422, "Validation error", problems(exc.errors())), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = exc.headers
        # Starlette's own 404/405 carry only the reason phrase: say what was asked instead.
        said = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            error, detail = "Not found", said or f"Nothing answers {where}"
        elif exc.status_code == 405:
            # RFC 9110: a 405 lists every method the path takes. Starlette's names only those of
            # the first route matching the path (POST /agents, not GET /agents).
            allowed = allowed_methods(request)
            headers = {"Allow": ", ".join(allowed)}
            error = "Method not allowed"
            detail = f"{request.url.path} does not take {request.method}; it takes {', '.join(allowed)}"
        else:
            error, detail = str(exc.detail), None
        return JSONResponse(
            error_body(exc.status_code, error, detail), status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, _: ClientDisconnect) -> Response:
        # The client closed the connection while its body was read: a browser cancelling a request
        # it replaced (the console's previews do), not our fault; nobody reads the answer. nginx
        # logs these as 499, and so do we, quietly.
        log.info(f"{service}.client_disconnected", method=request.method, path=request.url.path)
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):  # lost or refused connection: the client may retry at once
            log.warning(f"{service}.database_unavailable", error=describe_error(exc))
            return JSONResponse(
                error_body(503, "Service unavailable", "The database could not be reached; retry shortly"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        log.exception(f"{service}.unhandled_error", error=describe_error(exc))
        return JSONResponse(error_body(500, "Internal server error"), status_code=500)


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


# Pydantic prefixes the message of a validator's ValueError / assert with these: noise to a reader.
_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def error_message(err: Any) -> str:
    """The message of one Pydantic error (`ValidationError.errors()` item) as a reader should see
    it: "must be a finite number", not "Value error, must be a finite number"."""
    message = str(err.get("msg", "invalid"))
    for prefix in _PYDANTIC_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def problems(errors: Sequence[Any]) -> str:
    """`loc: msg; …` of validation errors (never their input values)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {error_message(err)}" for err in errors
    )
