"""The console's pages under /console. Each page is admitted as the API route it mirrors
(`web.admitted`, same scope, revocation and rate limit) and gets its data by calling that route's
function or the service it calls: the console has no path of its own to the database or the bus."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile

from gateway import results, views
from gateway.changes import ChangeListener, campaign_stream, stream_changes
from gateway.console import session as sessions
from gateway.console import setup as setup_pages
from gateway.console import sheets
from gateway.console.web import (
    Answer,
    Refused,
    admitted,
    admitted_post,
    call,
    current_session,
    page,
    redirect,
    service_of,
    still_admitted,
)
from gateway.errors import ApiError, Unauthorized
from gateway.models import Campaign, DoNotCall
from gateway.routes import batch_calling
from gateway.schemas import DoNotCallRequest

router = APIRouter(prefix="/console", include_in_schema=False)

CAMPAIGN_STATUSES = ("pending", "running", "paused", "completed", "failed", "cancelled")
RECIPIENT_STATUSES = tuple(batch_calling.CallStatus.__args__)  # type: ignore[attr-defined]
# The outcome chart's bars: recipient statuses grouped as an operator reads them.
OUTCOME_BARS = (
    ("completed", "Completed", ("completed",)),
    ("no_answer", "No answer", ("no_answer",)),
    ("busy", "Busy", ("busy",)),
    ("voicemail", "Voicemail", ("voicemail",)),
    ("failed", "Failed", ("failed",)),
    ("opted_out", "Opted out", ("opted_out",)),
    ("skipped", "Skipped", ("skipped_dnc", "skipped_duplicate")),
    # Never called because the campaign was cancelled: not skipped by a rule.
    ("cancelled", "Cancelled", ("cancelled",)),
)
TABLE_PAGE = 25
Cursor = Annotated[str | None, Query()]


# ---- sign-in -------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return redirect(request, "/console/campaigns" if current_session(request) else "/console/sign-in")


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request) -> Response:
    return _sign_in_form(request, None, 200)


def _over_https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS, directly or through the deploy's proxy (Caddy sets
    X-Forwarded-Proto). Trusting the header is safe here: it only adds the cookies' Secure flag, and a
    client that lies about it just does not get its cookie back over plain HTTP."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _sign_in_form(request: Request, error: str | None, status_code: int) -> Response:
    token = sessions.new_session("", 0).csrf
    response = page(request, "sign_in.html", {"error": error, "signin_token": token}, status_code)
    response.set_cookie(
        sessions.PRE_COOKIE,
        token,
        max_age=3600,
        path=sessions.PATH,
        httponly=True,
        samesite="strict",
        secure=_over_https(request),
    )
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(
    request: Request, api_key: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = ""
) -> Response:
    if not sessions.same_token(request.cookies.get(sessions.PRE_COOKIE, ""), csrf_token):
        return _sign_in_form(request, "This form has expired. Please try again.", 403)
    api_key = api_key.strip()
    try:
        await request.app.state.access.admit(api_key, "GET", "/api/v1/batch-calling")
    except Unauthorized:
        return _sign_in_form(request, "That API key is not valid. Check it and try again.", 401)
    except ApiError as exc:
        return _sign_in_form(request, exc.error, exc.status_code)
    session = sessions.new_session(api_key, int(time.time()))
    response = redirect(request, "/console/campaigns")
    response.set_cookie(
        sessions.COOKIE,
        sessions.seal(service_of(request).settings.keyring, session),
        max_age=sessions.MAX_AGE_S,
        path=sessions.PATH,
        httponly=True,
        samesite="strict",
        secure=_over_https(request),
    )
    response.delete_cookie(sessions.PRE_COOKIE, path=sessions.PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    session = current_session(request)
    if session is not None and not sessions.same_token(
        session.csrf, request.headers.get("x-csrf-token") or csrf_token
    ):
        raise Refused(403, "This form has expired. Reload the page and try again.")
    response = redirect(request, "/console/sign-in")
    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
    return response


# ---- campaigns -----------------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse)
async def campaigns(request: Request, status: str | None = None, cursor: Cursor = None) -> Response:
    operator = await admitted(request, "GET", "/api/v1/batch-calling")
    chosen = status if status in CAMPAIGN_STATUSES else None
    listed = await call(
        batch_calling.list_jobs(service_of(request), page_size=50, cursor=cursor, status=chosen)  # type: ignore[arg-type]
    )
    return page(
        request,
        "campaigns.html",
        {
            "jobs": listed.body.get("jobs", []),
            "next_cursor": listed.body.get("cursor"),
            "status": chosen,
            "statuses": CAMPAIGN_STATUSES,
            "can_operate": operator.can_operate,
        },
    )


def _events_response(request: Request, events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    return EventSourceResponse(
        events,
        ping=service_of(request).settings.sse_ping_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _resume_from(request: Request) -> int | None:
    """The console's own EventSource reconnecting: an id it cannot resume from (not one, or past the
    log's last, e.g. from before a database reset) starts afresh, as a reload of the page would,
    rather than a stream that waits for ever; the campaign page's stream opens with the job as it is."""
    raw = (request.headers.get("last-event-id") or "").strip()
    if not (raw.isascii() and raw.isdigit()):
        return None
    start = int(raw)
    return start if start <= await service_of(request).highest_change_id_taken() else None


@router.get("/events")
async def all_events(request: Request) -> EventSourceResponse:
    """The API's `/batch-calling/events` stream, for the signed-in operator."""
    api_path = "/api/v1/batch-calling/events"
    operator = await admitted(request, "GET", api_path)
    service = service_of(request)
    listener: ChangeListener = request.app.state.changes
    start = await _resume_from(request)
    if start is None:
        start = await service.last_change_id()
    checks = still_admitted(request, operator, "GET", api_path)
    return _events_response(request, stream_changes(service, listener, None, start, checks))


@router.get("/campaigns/{job_id}/events")
async def campaign_events(job_id: str, request: Request) -> EventSourceResponse:
    """The API's `/batch-calling/{job_id}/events` stream, for the signed-in operator."""
    api_path = f"/api/v1/batch-calling/{job_id}/events"
    operator = await admitted(request, "GET", api_path)
    service = service_of(request)
    listener: ChangeListener = request.app.state.changes
    start = await _resume_from(request)
    await service.get(Campaign, job_id, "Batch job not found")
    checks = still_admitted(request, operator, "GET", api_path)
    return _events_response(request, campaign_stream(service, listener, job_id, start, checks))


async def _summary_context(request: Request, job_id: str) -> dict[str, Any]:
    service = service_of(request)
    job = await call(batch_calling.get_job(job_id, service))
    if not job.ok:
        raise Refused(job.status_code, job.message)
    counts = await service.status_counts(job_id)
    bars = [(key, label, sum(counts.get(s, 0) for s in statuses)) for key, label, statuses in OUTCOME_BARS]
    return {"job": job.body, "bars": bars, "bar_max": max([n for _, _, n in bars] + [1])}


@router.get("/campaigns/{job_id}", response_class=HTMLResponse)
async def campaign(job_id: str, request: Request) -> Response:
    operator = await admitted(request, "GET", f"/api/v1/batch-calling/{job_id}")
    context = await _summary_context(request, job_id)
    table = await _recipients_context(request, job_id, None, None, None, None)
    return page(
        request,
        "campaign.html",
        context | table | {"can_operate": operator.can_operate, "recipient_statuses": RECIPIENT_STATUSES},
    )


@router.get("/campaigns/{job_id}/summary", response_class=HTMLResponse)
async def campaign_summary(job_id: str, request: Request) -> Response:
    operator = await admitted(request, "GET", f"/api/v1/batch-calling/{job_id}")
    context = await _summary_context(request, job_id)
    return page(request, "_summary.html", context | {"can_operate": operator.can_operate})


async def _recipients_context(
    request: Request,
    job_id: str,
    search: str | None,
    status: str | None,
    outcome: str | None,
    cursor: str | None,
) -> dict[str, Any]:
    status = status if status in RECIPIENT_STATUSES else None
    outcome = (outcome or "").replace("\x00", "").strip()
    rows, next_cursor = await service_of(request).results_page(
        job_id,
        cursor,
        TABLE_PAGE,
        [status] if status else None,
        [outcome] if outcome else None,
        search=(search or "").strip() or None,
    )
    return {
        "job_id": job_id,
        "recipients": [results.recipient_view(r) for r in rows],
        "next_cursor": next_cursor,
        "search": search or "",
        "filter_status": status or "",
        "filter_outcome": outcome or "",
        "cursor": cursor or "",
    }


@router.get("/campaigns/{job_id}/recipients", response_class=HTMLResponse)
async def campaign_recipients(
    job_id: str,
    request: Request,
    search: str | None = None,
    status: str | None = None,
    outcome: str | None = None,
    cursor: Cursor = None,
) -> Response:
    await admitted(request, "GET", f"/api/v1/batch-calling/{job_id}/calls")
    await service_of(request).get(Campaign, job_id, "Batch job not found")
    context = await _recipients_context(request, job_id, search, status, outcome, cursor)
    return page(request, "_recipients.html", context)


@router.get("/campaigns/{job_id}/recipients/{recipient_id}", response_class=HTMLResponse)
async def recipient(job_id: str, recipient_id: str, request: Request) -> Response:
    await admitted(request, "GET", f"/api/v1/batch-calling/{job_id}/calls")
    service = service_of(request)
    rows, _ = await service.results_page(job_id, None, 1, None, None, recipient_id=recipient_id)
    if not rows:
        raise Refused(404, f"No recipient {recipient_id} in this campaign")
    view = results.recipient_view(rows[0])
    conversation = (view["analysis"] or {}).get("conversation_id") or view["conversation_id"]
    transcript = await service.transcript(conversation) if conversation else None
    return page(
        request,
        "recipient.html",
        {"job_id": job_id, "r": view, "transcript": transcript, "conversation_id": conversation},
    )


@router.get("/campaigns/{job_id}/calls.csv")
async def campaign_csv(
    job_id: str, request: Request, status: str | None = None, outcome: str | None = None
) -> StreamingResponse:
    await admitted(request, "GET", f"/api/v1/batch-calling/{job_id}/calls.csv")
    status = status if status in RECIPIENT_STATUSES else None
    return await batch_calling.job_calls_csv(job_id, service_of(request), status, outcome or None)  # type: ignore[arg-type]


_CONTROLS = {
    "pause": batch_calling.pause_job,
    "resume": batch_calling.resume_job,
    "cancel": batch_calling.cancel_job,
}


@router.post("/campaigns/{job_id}/{action}", response_class=HTMLResponse)
async def control(job_id: str, action: Literal["pause", "resume", "cancel"], request: Request) -> Response:
    await admitted_post(request, "POST", f"/api/v1/batch-calling/{job_id}/{action}")
    answer = await call(_CONTROLS[action](job_id, service_of(request)))
    context = await _summary_context(request, job_id)
    notice = _control_notice(action, answer)
    return page(request, "_summary.html", context | {"can_operate": True, "notice": notice})


def _control_notice(action: str, answer: Answer) -> dict[str, str]:
    if answer.status_code == 202:
        return {"kind": "info", "text": f"{action.capitalize()} requested; it is being carried out."}
    if answer.ok:
        done = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled"}[action]
        return {"kind": "ok", "text": f"{done}."}
    return {"kind": "error", "text": answer.message}


# ---- new campaign --------------------------------------------------------------------------------


@router.get("/campaigns-new", response_class=HTMLResponse)
async def new_campaign(request: Request) -> Response:
    await admitted(request, "POST", "/api/v1/batch-calling/validate")
    return page(request, "new_campaign.html", await sheets.form_context(service_of(request)))


@router.post("/campaigns-new/validate", response_class=HTMLResponse)
async def validate_campaign(request: Request) -> Response:
    await admitted_post(request, "POST", "/api/v1/batch-calling/validate")
    return await sheets.check(request, submit=False)


@router.post("/campaigns-new/submit", response_class=HTMLResponse)
async def submit_campaign(request: Request) -> Response:
    await admitted_post(request, "POST", "/api/v1/batch-calling/submit")
    return await sheets.check(request, submit=True)


# ---- do-not-call ---------------------------------------------------------------------------------


@router.get("/do-not-call", response_class=HTMLResponse)
async def do_not_call(request: Request, search: str | None = None, cursor: Cursor = None) -> Response:
    operator = await admitted(request, "GET", "/api/v1/do-not-call")
    return page(
        request,
        "do_not_call.html",
        await _dnc_context(request, search, cursor) | {"can_operate": operator.can_operate},
    )


async def _dnc_context(request: Request, search: str | None, cursor: str | None) -> dict[str, Any]:
    """The list's page (the API's listing), or the one number searched for."""
    service = service_of(request)
    search = (search or "").replace("\x00", "").strip()  # PostgreSQL text holds no NUL
    if not search:
        listed = await call(batch_calling.list_do_not_call(service, page_size=50, cursor=cursor))
        return {
            "numbers": listed.body.get("numbers", []),
            "next_cursor": listed.body.get("cursor"),
            "search": "",
        }
    found = await service.find(DoNotCall, search)
    numbers = [views.do_not_call_view(found)] if found is not None else []
    return {"numbers": numbers, "next_cursor": None, "search": search}


@router.post("/do-not-call", response_class=HTMLResponse)
async def add_do_not_call(
    request: Request, phone_number: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = ""
) -> Response:
    await admitted_post(request, "POST", "/api/v1/do-not-call")
    number = phone_number.strip()
    answer = await call(
        batch_calling.add_do_not_call(
            DoNotCallRequest(phone_number=number, reason=reason.strip() or None), service_of(request)
        )
    )
    notice = (
        {"kind": "ok", "text": f"{number} will not be called."}
        if answer.ok
        else {"kind": "error", "text": _plain_number_error(answer)}
    )
    context = await _dnc_context(request, None, None)
    return page(
        request,
        "_dnc_body.html",
        context | {"can_operate": True, "notice": notice, "typed": "" if answer.ok else number},
    )


def _plain_number_error(answer: Answer) -> str:
    if "E.164" in answer.message or "phone" in answer.message.lower():
        return "That is not a phone number in international format: write it as +14155550123."
    return answer.message


@router.post("/do-not-call/remove", response_class=HTMLResponse)
async def remove_do_not_call(request: Request, phone_number: Annotated[str, Form()] = "") -> Response:
    await admitted_post(request, "DELETE", f"/api/v1/do-not-call/{phone_number}")
    answer = await call(batch_calling.remove_do_not_call(phone_number, service_of(request)))
    notice = (
        {"kind": "ok", "text": f"{phone_number} removed: it may be called again."}
        if answer.ok
        else {"kind": "error", "text": answer.message}
    )
    context = await _dnc_context(request, None, None)
    return page(request, "_dnc_body.html", context | {"can_operate": True, "notice": notice})


@router.post("/do-not-call/import", response_class=HTMLResponse)
async def import_do_not_call(request: Request) -> Response:
    await admitted_post(request, "POST", "/api/v1/do-not-call")
    form = await request.form(max_files=1, max_fields=5)
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            notice = {"kind": "error", "text": "Choose a CSV file with a phone_number column."}
        else:
            notice = await sheets.import_do_not_call(request, file)
    finally:
        await form.close()
    context = await _dnc_context(request, None, None)
    return page(request, "_dnc_body.html", context | {"can_operate": True, "notice": notice})


# ---- setup ---------------------------------------------------------------------------------------


@router.get("/setup", response_class=HTMLResponse)
async def setup(request: Request) -> Response:
    operator = await admitted(request, "GET", "/api/v1/agents")
    context = await setup_pages.lists(service_of(request))
    return page(request, "setup.html", context | {"can_operate": operator.can_operate})


@router.post("/setup/test-call", response_class=HTMLResponse)
async def place_test_call(
    request: Request,
    agent_id: Annotated[str, Form()] = "",
    phone_number_id: Annotated[str, Form()] = "",
    to_number: Annotated[str, Form()] = "",
) -> Response:
    await admitted_post(request, "POST", "/api/v1/phone-numbers/twilio/outbound-call")
    notice = await setup_pages.place_test_call(
        service_of(request), agent_id, phone_number_id, to_number.strip()
    )
    return page(request, "_notice.html", {"notice": notice})
