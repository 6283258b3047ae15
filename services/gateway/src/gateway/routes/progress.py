"""Live progress of campaigns (beyond the spec): Server-Sent Events of the campaign change log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.access import Principal, required_scope
from gateway.auth import AccessService
from gateway.changes import ChangeListener, StillAdmitted, campaign_stream, stream_changes
from gateway.errors import Unprocessable
from gateway.models import Campaign
from gateway.responses import EVENT_STREAM
from gateway.routes.deps import Service, api_router
from gateway.service import GatewayService

router = api_router()

MAX_EVENT_ID = 2**63 - 1  # campaign_changes.change_id is a BIGINT

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
AfterQuery = Annotated[
    str | None,
    Query(description="Resume after this event id (as the Last-Event-ID header; the header wins)."),
]


def _resume_from(header: str | None, query: str | None) -> int | None:
    raw = header if header not in (None, "") else query
    if raw in (None, ""):
        return None
    assert raw is not None
    text = raw.strip()
    # ASCII digits only ("²".isdigit() is true, and int() refuses it), and within the change ids'
    # BIGINT: past it PostgreSQL refused the query after the stream had started.
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_EVENT_ID:
        raise Unprocessable("Validation error", "Last-Event-ID: must be an event id this API sent")
    return int(text)


async def _resumable(service: GatewayService, header: str | None, query: str | None) -> int | None:
    """The change id to resume after (None: none given), refused when it is past every id the log
    has handed out (from before a database reset, or made up): the stream would wait for ever for
    changes it never sees, and resuming from the end instead would skip what came before it."""
    start = _resume_from(header, query)
    if start is not None:
        taken = await service.highest_change_id_taken()
        if start > taken:
            raise Unprocessable(
                "Validation error",
                f"Last-Event-ID: {start} is ahead of the change log (whose last id is {taken}); "
                "it is not an id this API sent, or the log was reset since. Reconnect without it "
                "(a new EventSource) to follow from now.",
            )
    return start


def _still_admitted(request: Request) -> StillAdmitted:
    """Whether the stream's API key still admits it (not revoked, scope still enough)."""
    access: AccessService = request.app.state.access
    principal: Principal = request.state.principal  # set by gateway.guard
    needed = required_scope(request.method, request.url.path)

    async def check() -> bool:
        return await access.still_admits(principal, needed)

    return check


def _response(request: Request, events: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    service = request.app.state.service
    return EventSourceResponse(
        events,
        ping=service.settings.sse_ping_s,
        # Proxies (nginx) must pass each event on at once, not buffer the stream.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# Registered before /batch-calling/{job_id} (routes.ROUTERS): "events" is not a job id.
@router.get(
    "/batch-calling/events",
    tags=["batch-calling"],
    response_class=EventSourceResponse,
    responses=EVENT_STREAM,
)
async def all_campaign_events(
    request: Request,
    service: Service,
    last_event_id: LastEventId = None,
    after: AfterQuery = None,
) -> EventSourceResponse:
    """Server-Sent Events of every campaign: `campaign` (status and counters) and `recipient` (a
    recipient's status, outcome, conversation) as they are projected. Each event's `id` is a
    change id: reconnect with `Last-Event-ID` (browsers' EventSource does) to get every change
    after it, none twice; an id past the log's last (from before a database reset) is a 422, not
    a silent stream: open a new stream without one. Without one the stream starts with the next
    change. `: ping` comments every GATEWAY_SSE_PING_S keep idle connections open."""
    listener: ChangeListener = request.app.state.changes
    start = await _resumable(service, last_event_id, after)
    if start is None:
        start = await service.last_change_id()
    return _response(request, stream_changes(service, listener, None, start, _still_admitted(request)))


@router.get(
    "/batch-calling/{job_id}/events",
    tags=["batch-calling"],
    response_class=EventSourceResponse,
    responses=EVENT_STREAM,
)
async def campaign_events(
    job_id: str,
    request: Request,
    service: Service,
    last_event_id: LastEventId = None,
    after: AfterQuery = None,
) -> EventSourceResponse:
    """Server-Sent Events of one campaign (as `/batch-calling/events`). Without Last-Event-ID the
    stream opens with a `campaign` event of the job as it is now, whose id resumes after it."""
    listener: ChangeListener = request.app.state.changes
    start = await _resumable(service, last_event_id, after)
    await service.get(Campaign, job_id, "Batch job not found")

    return _response(request, campaign_stream(service, listener, job_id, start, _still_admitted(request)))
