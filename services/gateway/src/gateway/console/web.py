"""What every console page shares: templates, the signed-in operator (`Operator`), CSRF checks, and
calling a REST route's function in-process (`call`), so a page does exactly what the API does."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from bus.http_errors import error_message
from gateway.access import Principal, Scope, required_scope
from gateway.auth import AccessService
from gateway.console import session as sessions
from gateway.console.session import ConsoleSession
from gateway.errors import ApiError, Forbidden, Unauthorized
from gateway.service import GatewayService

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _when(unix: int | None) -> str:
    if unix is None:
        return "—"
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _percent(part: int | None, whole: int | None) -> int:
    if not whole:
        return 0
    return min(100, round(100 * (part or 0) / whole))


def plural(count: int | None, word: str, many: str | None = None) -> str:
    """ "1 problem", "2 problems", "0 problems"; `many` for irregular words (person, people)."""
    n = count or 0
    return f"{n} {word if n == 1 else many or word + 's'}"


def _status_of(job: dict[str, Any]) -> tuple[str, str]:
    """(data-status, text) of a campaign's badge and bar: a campaign that completed without reaching
    anybody (its `status_reason` says so) is not shown as a plain success. console.js `badge`
    does the same for live updates."""
    status = str(job.get("status", ""))
    if status == "completed" and job.get("status_reason"):
        return "completed-unreached", "completed, nobody reached"
    return status, status


templates.env.filters["when"] = _when
templates.env.filters["plural"] = plural
templates.env.globals["percent"] = _percent
templates.env.globals["status_of"] = _status_of


class SignInNeeded(Exception):
    """No session, an expired one, or its key no longer admitted: back to the sign-in page."""


class Refused(Exception):
    """The operator's key may not do this (its scope), or too many requests: a page saying so."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


@dataclass(frozen=True)
class Operator:
    """A signed-in request: its session and the principal its key is admitted as."""

    session: ConsoleSession
    principal: Principal

    @property
    def can_operate(self) -> bool:
        return self.principal.scope in (Scope.OPERATOR, Scope.ADMIN)


def service_of(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


def _access(request: Request) -> AccessService:
    access: AccessService = request.app.state.access
    return access


def current_session(request: Request) -> ConsoleSession | None:
    keyring = service_of(request).settings.keyring
    return sessions.unseal(keyring, request.cookies.get(sessions.COOKIE), int(time.time()))


async def admitted(request: Request, method: str, api_path: str) -> Operator:
    """The operator, admitted as a request to the API route the page mirrors (`method api_path`,
    e.g. `GET /api/v1/batch-calling/{id}`): the same scope table, revocation and rate limit.
    Raises SignInNeeded or Refused."""
    session = current_session(request)
    if session is None:
        raise SignInNeeded
    try:
        principal = await _access(request).admit(session.api_key, method, api_path)
    except Unauthorized:
        raise SignInNeeded from None
    except Forbidden:
        raise Refused(
            403, "Your API key may only read. Sign in with an operator key to change anything."
        ) from None
    except ApiError as exc:
        raise Refused(exc.status_code, exc.error) from None
    return Operator(session, principal)


def still_admitted(
    request: Request, operator: Operator, method: str, api_path: str
) -> Callable[[], Awaitable[bool]]:
    """For a stream the operator opened: whether the session is still valid (not past
    `sessions.MAX_AGE_S`) and its key still admits `method api_path` (not revoked, scope enough)."""
    access = _access(request)
    needed = required_scope(method, api_path)

    async def check() -> bool:
        if int(time.time()) - operator.session.issued_unix > sessions.MAX_AGE_S:
            return False
        return await access.still_admits(operator.principal, needed)

    return check


async def admitted_post(
    request: Request, method: str, api_path: str, form_token: str | None = None
) -> Operator:
    """As `admitted`, for a change: the CSRF token must come with it (header or form field)."""
    operator = await admitted(request, method, api_path)
    presented = request.headers.get("x-csrf-token") or form_token
    if not sessions.same_token(operator.session.csrf, presented):
        raise Refused(403, "This form has expired. Reload the page and try again.")
    return operator


@dataclass(frozen=True)
class Answer:
    """What an API route answered: its status and JSON body."""

    status_code: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def message(self) -> str:
        """The error in plain words: the error, then its detail when that is text."""
        error = str(self.body.get("error", "Something went wrong"))
        detail = self.body.get("detail")
        if isinstance(detail, str) and detail:
            return f"{error}: {detail}"
        return error


async def call(route: Awaitable[Any]) -> Answer:
    """Await a REST route's function (called with the objects FastAPI would pass) and give its
    answer, errors included, as the API would have answered them."""
    try:
        result = await route
    except ApiError as exc:
        return Answer(exc.status_code, exc.body())
    except (RequestValidationError, ValidationError) as exc:
        return Answer(422, {"success": False, "error": "Validation error", "detail": _problems(exc)})
    if isinstance(result, JSONResponse):
        return Answer(result.status_code, json.loads(bytes(result.body)))
    return Answer(200, dict(result))


def _problems(exc: RequestValidationError | ValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        out.append({"field": ".".join(loc), "error": error_message(error)})
    return out


def page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A page (or, for htmx, a fragment) rendered with what every page needs."""
    session = current_session(request)
    base = {"csrf": session.csrf if session else "", "signed_in": session is not None}
    return templates.TemplateResponse(request, template, base | context, status_code=status_code)


def redirect(request: Request, url: str) -> Response:
    """A redirect that htmx follows as a whole-page navigation too."""
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return Response(status_code=303, headers={"Location": url})
