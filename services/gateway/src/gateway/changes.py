"""Live progress: wakes the Server-Sent Event streams of this replica when campaign changes commit.

Whichever replica projects a change appends it to `gateway.campaign_changes` and `pg_notify`s the
campaign id at commit; every replica LISTENs on one connection and wakes the streams following that
campaign (or all campaigns), which then read the log from their last id. The log, not the
notification, is the source: a notification only says "read now", so one lost with a dropped
LISTEN connection costs at most `POLL_S` of delay, never an event.

A stream outlives the admission of the request that opened it: every `KEY_CHECK_S` (at the latest
`POLL_S` when idle) it asks whether its API key still admits it, and ends when the key was revoked
or no longer has the scope (or the console session expired).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from sse_starlette import ServerSentEvent

from gateway.models import Campaign
from gateway.repository import CHANGES_CHANNEL
from gateway.service import GatewayService
from gateway.views import job_progress_view

log = structlog.get_logger("gateway.changes")

# A stream re-reads the log at least this often without a notification (a LISTEN connection can drop).
POLL_S = 5.0
# Changes read per query; a stream behind by more reads again at once.
BATCH = 500
ALL = ""  # the key of streams that follow every campaign
# How often a stream re-checks its API key: a revoked key reads at most this much more (plus one
# batch). One primary-key read per stream, so cheap at any number of streams.
KEY_CHECK_S = 2.0

# Whether the stream's credentials still admit it (`AccessService.still_admits` for its principal).
StillAdmitted = Callable[[], Awaitable[bool]]


class ChangeListener:
    def __init__(self, database_url: str) -> None:
        self._dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self._streams: dict[str, set[asyncio.Event]] = {}
        self._conn: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._conn = await asyncpg.connect(self._dsn)
        await self._conn.add_listener(CHANGES_CHANNEL, self._on_notify)

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, campaign_id: str) -> None:
        for key in (campaign_id, ALL):
            for wake in self._streams.get(key, ()):
                wake.set()

    def follow(self, campaign_id: str | None) -> asyncio.Event:
        """An event set whenever a change of `campaign_id` (None: any campaign) commits."""
        wake = asyncio.Event()
        self._streams.setdefault(campaign_id or ALL, set()).add(wake)
        return wake

    def unfollow(self, campaign_id: str | None, wake: asyncio.Event) -> None:
        key = campaign_id or ALL
        streams = self._streams.get(key)
        if streams is not None:
            streams.discard(wake)
            if not streams:
                del self._streams[key]


def change_event(change_id: int, kind: str, payload: dict[str, Any]) -> ServerSentEvent:
    """One SSE event: `id` the change's id (what Last-Event-ID resumes from), `event` its kind
    (`campaign` or `recipient`), `data` its JSON payload."""
    return ServerSentEvent(data=json.dumps(payload, separators=(",", ":")), event=kind, id=str(change_id))


async def stream_changes(
    service: GatewayService,
    listener: ChangeListener,
    campaign_id: str | None,
    after: int,
    still_admitted: StillAdmitted,
) -> AsyncIterator[ServerSentEvent]:
    """Every change after `after`, in order, then each new one as it commits; until the client goes
    or `still_admitted` (asked every `KEY_CHECK_S`) says no."""
    loop = asyncio.get_running_loop()
    checked = loop.time()  # the request was just admitted
    wake = listener.follow(campaign_id)
    try:
        while True:
            if loop.time() - checked >= KEY_CHECK_S:
                if not await still_admitted():
                    log.info("gateway.changes.stream_ended", reason="credentials no longer admitted")
                    return
                checked = loop.time()
            # Cleared before reading: a change committed during the read sets it again.
            wake.clear()
            rows = await service.changes_after(after, campaign_id, BATCH)
            for row in rows:
                yield change_event(row.change_id, row.kind, row.payload)
            if rows:
                after = rows[-1].change_id
            if len(rows) == BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), POLL_S)
    finally:
        listener.unfollow(campaign_id, wake)


async def campaign_stream(
    service: GatewayService,
    listener: ChangeListener,
    job_id: str,
    after_id: int | None,
    still_admitted: StillAdmitted,
) -> AsyncIterator[ServerSentEvent]:
    """One campaign's changes after `after_id`; without one, first a `campaign` event of the job as
    it is now, whose id resumes after it (the API's stream and the console's)."""
    if after_id is None:
        # The log position first, then the state: a change in between is sent again, never lost.
        after_id = await service.last_change_id()
        campaign = await service.get(Campaign, job_id, "Batch job not found")
        yield change_event(after_id, "campaign", job_progress_view(campaign))
    async for event in stream_changes(service, listener, job_id, after_id, still_admitted):
        yield event
