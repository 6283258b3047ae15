"""Campaigns (api-v1.md 10): submit, list, status, per-call results, cancel; beyond the spec pause,
resume and a do-not-call list. The orchestrator is the campaigns service; this is its REST face."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from contracts.campaigns import (
    CancelCampaign,
    PauseCampaign,
    RecipientStatus,
    ResumeCampaign,
)
from gateway import views
from gateway.batch import BatchCalling
from gateway.batch_jobs import BatchJobs
from gateway.models import Campaign, DoNotCall
from gateway.responses import (
    WRITE_RESPONSES,
    Done,
    DoNotCallList,
    DoNotCallOut,
    JobCallList,
    JobDetail,
    JobList,
    JobOut,
    SubmissionCheck,
)
from gateway.routes.deps import Numbers, PageSize, Service, api_router, respond
from gateway.schemas import DoNotCallRequest
from gateway.submissions import SUBMISSION_BODY, submission_of

router = api_router()


@router.post(
    "/batch-calling/submit",
    tags=["batch-calling"],
    openapi_extra=SUBMISSION_BODY,
    response_model=JobOut,
    responses=WRITE_RESPONSES,
)
async def submit(request: Request, service: Service, numbers: Numbers) -> JSONResponse:
    """Submit a campaign: a JSON body (api-v1.md 10.1) or a spreadsheet (`multipart/form-data`:
    `file` plus the other fields). Answers the job with a `report`: counts, each recipient's
    number as read and the zones its calling window applies in, do-not-call matches. Problems are
    a 422 naming each recipient (`index`) or spreadsheet row and column, all at once."""
    async with submission_of(request) as submission:
        return respond(await BatchCalling(service, numbers).submit(submission))


@router.post(
    "/batch-calling/validate",
    tags=["batch-calling"],
    openapi_extra=SUBMISSION_BODY,
    responses={200: {"model": SubmissionCheck, "description": "What submit would make of it"}},
)
async def validate(request: Request, service: Service, numbers: Numbers) -> dict[str, Any]:
    """The same input as submit; nothing is created. Answers `valid`, `counts`, `problems`,
    `recipients` (number as read, zones), `do_not_call`, `time_zones` and an `estimate` of the
    campaign's duration from its concurrency, calling window and the average call time so far."""
    async with submission_of(request) as submission:
        return await BatchCalling(service, numbers).validate(submission)


JobStatus = Literal["pending", "running", "paused", "completed", "failed", "cancelled"]


@router.get("/batch-calling", tags=["batch-calling"], response_model=JobList)
async def list_jobs(
    service: Service, page_size: PageSize = 30, cursor: str | None = None, status: JobStatus | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(
        Campaign, cursor, page_size, {"status": status} if status else None
    )
    jobs = [views.job_summary_view(c) for c in rows]
    return {"jobs": jobs, "cursor": next_cursor}


@router.get("/batch-calling/{job_id}", tags=["batch-calling"], response_model=JobDetail)
async def get_job(job_id: str, service: Service) -> dict[str, Any]:
    return await BatchJobs(service).job(job_id)


# A recipient's status filter takes exactly the statuses the campaign events carry. Given more
# than once (`?status=completed&status=skipped_dnc`), a filter matches any of its values.
CallStatus = RecipientStatus
StatusFilter = Annotated[
    list[CallStatus] | None, Query(description="Recipients in this status; repeat it for any of several.")
]
OutcomeFilter = Annotated[
    list[str] | None, Query(description="Recipients with this outcome (exact); repeat it for any of several.")
]


def _wants_csv(request: Request) -> bool:
    """Whether the client asked for CSV (`Accept: text/csv`) rather than JSON."""
    accept = request.headers.get("accept", "").lower()
    return "text/csv" in accept and "application/json" not in accept


@router.get(
    "/batch-calling/{job_id}/calls",
    tags=["batch-calling"],
    response_model=None,
    responses={
        200: {
            "model": JobCallList,
            "description": "A page of recipients; the whole campaign as CSV with `Accept: text/csv`",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def job_calls(
    job_id: str,
    request: Request,
    service: Service,
    page_size: PageSize = 30,
    cursor: str | None = None,
    status: StatusFilter = None,
    outcome: OutcomeFilter = None,
) -> dict[str, Any] | StreamingResponse:
    """Each recipient in submission order: api-v1.md 10.4's fields, then `recipient_id`, `position`,
    `name`, `email`, `dynamic_variables`, `time_zones`, `reason`, every attempt (`attempts`:
    attempt, to_number, status, conversation_id, started_at_unix, ended_at_unix, duration_seconds,
    termination_reason) and the last answered call's post-call `analysis` (call_successful,
    transcript_summary, data_collection_results, evaluation_criteria_results) or null. Filters:
    `status`, `outcome` (exact); each may be repeated, matching any of its values. With `Accept: text/csv` the whole filtered campaign as CSV
    (`calls.csv`)."""
    if _wants_csv(request):
        return await job_calls_csv(job_id, service, status, outcome)
    return await BatchJobs(service).calls(job_id, cursor, page_size, status, outcome)


@router.get(
    "/batch-calling/{job_id}/calls.csv",
    tags=["batch-calling"],
    response_class=StreamingResponse,
    responses={200: {"description": "Every recipient as a CSV row", "content": {"text/csv": {}}}},
)
async def job_calls_csv(
    job_id: str, service: Service, status: StatusFilter = None, outcome: OutcomeFilter = None
) -> StreamingResponse:
    """Every recipient (filtered by `status`, `outcome`) as one CSV row, streamed a page at a time:
    the fixed columns (`results.FIXED_COLUMNS`), then `data_collection.<id>` per data collection
    id of the campaign's analyses and `dynamic_variables.<name>` per submitted variable."""
    export = await BatchJobs(service).export(job_id, status, outcome)
    return StreamingResponse(
        export.lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.file_name}.csv"'},
    )


@router.post(
    "/batch-calling/{job_id}/cancel", tags=["batch-calling"], response_model=Done, responses=WRITE_RESPONSES
)
async def cancel_job(job_id: str, service: Service) -> JSONResponse:
    return respond(await BatchJobs(service).control(CancelCampaign(campaign_id=job_id)))


@router.post(
    "/batch-calling/{job_id}/pause", tags=["batch-calling"], response_model=Done, responses=WRITE_RESPONSES
)
async def pause_job(job_id: str, service: Service) -> JSONResponse:
    return respond(await BatchJobs(service).control(PauseCampaign(campaign_id=job_id)))


@router.post(
    "/batch-calling/{job_id}/resume", tags=["batch-calling"], response_model=Done, responses=WRITE_RESPONSES
)
async def resume_job(job_id: str, service: Service) -> JSONResponse:
    return respond(await BatchJobs(service).control(ResumeCampaign(campaign_id=job_id)))


# ---- do-not-call list (beyond the spec) ------------------------------------------------------


@router.post("/do-not-call", tags=["do-not-call"], response_model=DoNotCallOut, responses=WRITE_RESPONSES)
async def add_do_not_call(body: DoNotCallRequest, service: Service) -> JSONResponse:
    return respond(await BatchJobs(service).add_do_not_call(body.phone_number, body.reason))


@router.get("/do-not-call", tags=["do-not-call"], response_model=DoNotCallList)
async def list_do_not_call(
    service: Service, page_size: PageSize = 100, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(DoNotCall, cursor, page_size)
    return {"numbers": [views.do_not_call_view(d) for d in rows], "cursor": next_cursor}


@router.delete(
    "/do-not-call/{phone_number}", tags=["do-not-call"], response_model=Done, responses=WRITE_RESPONSES
)
async def remove_do_not_call(phone_number: str, service: Service) -> JSONResponse:
    return respond(await BatchJobs(service).remove_do_not_call(phone_number))
