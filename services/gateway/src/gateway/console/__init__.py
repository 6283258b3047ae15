"""The operator console: server-rendered pages at /console on the API's own origin (Jinja2
templates, htmx for partial updates, Server-Sent Events for live progress; every file served from
`static/`, no CDN, no build step). Pages call the REST routes' functions and services in-process
(`routes`), admitted with the signed-in operator's API key as the API route they mirror."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from bus.http_errors import error_body
from gateway.console.routes import router
from gateway.console.web import HERE, Refused, SignInNeeded, page, redirect

STATIC_PATH = "/console/static"


def is_console(request: Request) -> bool:
    return request.url.path == "/console" or request.url.path.startswith("/console/")


def error_page(request: Request, message: str, status_code: int) -> Response:
    return page(request, "refused.html", {"message": message}, status_code)


def install(app: FastAPI) -> None:
    """Mount the console's routes, static files and the answers to its two refusals."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        # Pages link static/favicon.svg; this answers browsers that ask the root anyway (a page
        # that links none, e.g. a JSON answer opened in a tab) instead of logging a 404 each time.
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, _: SignInNeeded) -> Response:
        if request.url.path.endswith("/events"):  # an EventSource cannot follow a redirect usefully
            return JSONResponse(
                error_body(401, "Sign-in needed", "The console session has ended; sign in again"),
                status_code=401,
            )
        return redirect(request, "/console/sign-in")

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return error_page(request, exc.message, exc.status_code)
