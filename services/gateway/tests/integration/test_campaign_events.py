"""Live progress (issue 13): Server-Sent Events of campaign changes, read by a real HTTP client
(httpx streaming) from the gateway served by uvicorn on a real socket, on real PostgreSQL. A client
that disconnects and reconnects with Last-Event-ID gets every change it missed, none twice; the
events the other services would publish are handed to the projector."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event, text

from bus.db import make_sessionmaker
from contracts.campaigns import CampaignRecipientUpdated, CampaignSnapshot, CampaignUpdated
from devinfra.broker import free_port
from gateway import changes
from gateway.access import Scope
from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.repository import CHANGES_CHANNEL, Changes
from gateway.retention import Retention

from .conftest import API_KEY

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Event:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


async def events(response: httpx.Response) -> AsyncIterator[Event]:
    """The events of a text/event-stream (the WHATWG parsing rules we need); comments included."""
    current = Event()
    async for line in response.aiter_lines():
        if line == "":
            if current.id is not None or current.event is not None or current.data or current.comments:
                yield current
            current = Event()
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            current.comments.append(value)
        elif name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data = f"{current.data}\n{value}" if current.data else value


@pytest.fixture
async def server(container: Container) -> AsyncIterator[str]:
    """The gateway on a real port (its bus is not started: nothing here needs Kafka)."""
    await container.changes.start()
    port = free_port()
    app = create_app(container)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        await container.changes.stop()


def _campaign(campaign_id: str, finished: int, seconds: int, status: str = "running") -> CampaignUpdated:
    return CampaignUpdated(
        campaign=CampaignSnapshot(
            campaign_id=campaign_id,
            name="live",
            agent_id="agent_live",
            phone_number_id="pn_live",
            status=status,  # type: ignore[arg-type]
            created_at_unix=int(T0.timestamp()),
            retry_count=0,
            total_calls_scheduled=10,
            total_calls_dispatched=10,
            total_calls_finished=finished,
            last_updated_at_unix=int(T0.timestamp()) + seconds,
        ),
        occurred_at=T0 + timedelta(seconds=seconds),
    )


def _recipient(campaign_id: str, position: int, status: str, seconds: int) -> CampaignRecipientUpdated:
    return CampaignRecipientUpdated(
        campaign_id=campaign_id,
        recipient_id=f"r{position}",
        position=position,
        to_number=f"+1415555{position:04d}",
        status=status,  # type: ignore[arg-type]
        outcome="booked" if status == "completed" else None,
        occurred_at=T0 + timedelta(seconds=seconds),
    )


async def _take(stream: AsyncIterator[Event], count: int, *, within: float = 30) -> list[Event]:
    """The next `count` events (pings skipped), or fail after `within` seconds."""
    got: list[Event] = []
    async with asyncio.timeout(within):
        async for event in stream:
            if event.event is None:
                continue  # a heartbeat comment
            got.append(event)
            if len(got) == count:
                return got
    raise AssertionError(f"the stream ended after {len(got)} of {count} events")


def _headers(**extra: str) -> dict[str, str]:
    return {"X-API-Key": API_KEY, **extra}


async def test_a_client_resuming_with_last_event_id_misses_nothing_and_gets_nothing_twice(
    server: str, container: Container
) -> None:
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    url = f"{server}/api/v1/batch-calling/{job}/events"
    projected: list[tuple[str, str]] = []  # (kind, what) in projection order

    async def change(event: CampaignUpdated | CampaignRecipientUpdated) -> None:
        await container.projection.project(event)
        if isinstance(event, CampaignUpdated):
            projected.append(("campaign", str(event.campaign.total_calls_finished)))
        else:
            projected.append(("recipient", f"{event.recipient_id}:{event.status}"))

    seen: list[Event] = []
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream("GET", url, headers=_headers()) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events(response)
            (opening,) = await _take(stream, 1)
            assert (opening.event, opening.json["id"], opening.json["status"]) == ("campaign", job, "running")
            for position in range(3):
                await change(_recipient(job, position, "dialing", 10 + position))
            await change(_campaign(job, 0, 20))
            seen += await _take(stream, 4)
        # Disconnected: the campaign goes on.
        for position in range(3):
            await change(_recipient(job, position, "completed", 30 + position))
        await change(_campaign(job, 3, 40, "completed"))
        last = seen[-1].id
        assert last is not None
        async with client.stream("GET", url, headers=_headers(**{"Last-Event-ID": last})) as response:
            stream = events(response)
            seen += await _take(stream, 4)
            # And live again after the catch-up.
            await change(_recipient(job, 9, "completed", 50))
            seen += await _take(stream, 1)

    received = [
        ("campaign", str(e.json["total_calls_finished"]))
        if e.event == "campaign"
        else ("recipient", f"{e.json['recipient_id']}:{e.json['status']}")
        for e in seen
    ]
    assert received == projected
    ids = [int(e.id or 0) for e in seen]
    assert ids == sorted(set(ids)), "ids strictly increase: nothing twice"
    assert int(opening.id or 0) < ids[0]
    assert seen[-1].json["outcome"] == "booked" and seen[-1].json["job_id"] == job


async def test_the_all_campaigns_stream_sees_each_campaign_and_only_real_changes(
    server: str, container: Container
) -> None:
    first, second = f"batch_{uuid.uuid4().hex}", f"batch_{uuid.uuid4().hex}"
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", f"{server}/api/v1/batch-calling/events", headers=_headers()) as response,
    ):
        assert response.status_code == 200
        stream = events(response)
        dialing = _recipient(first, 0, "dialing", 10)
        await container.projection.project(_campaign(first, 0, 0))
        await container.projection.project(dialing)
        await container.projection.project(dialing)  # redelivered: the projection already has it
        await container.projection.project(_recipient(first, 0, "scheduled", 5))  # older than what is shown
        await container.projection.project(_campaign(second, 0, 0))
        got = await _take(stream, 3)
    assert [(e.event, e.json.get("id") or e.json.get("job_id")) for e in got] == [
        ("campaign", first),
        ("recipient", first),
        ("campaign", second),
    ]
    assert got[1].json["status"] == "dialing"


async def test_concurrent_projections_reach_a_live_stream_in_id_order_all_of_them(
    server: str, container: Container
) -> None:
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream("GET", f"{server}/api/v1/batch-calling/{job}/events", headers=_headers()) as response,
    ):
        stream = events(response)
        await _take(stream, 1)
        # Eight projections at a time, as the gateway's consumers project partitions side by side
        # (a few connections: the test server is shared).
        slots = asyncio.Semaphore(8)

        async def project(position: int) -> None:
            async with slots:
                await container.projection.project(_recipient(job, position, "dialing", 10))

        await asyncio.gather(*(project(p) for p in range(60)))
        got = await _take(stream, 60, within=60)
    assert sorted(e.json["position"] for e in got) == list(range(60))
    ids = [int(e.id or 0) for e in got]
    assert ids == sorted(set(ids))


async def test_idle_streams_get_heartbeats_and_bad_requests_get_the_error_format(
    server: str, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(container.service.settings, "sse_ping_s", 0.2)
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream(
            "GET", f"{server}/api/v1/batch-calling/{job}/events", headers=_headers()
        ) as response:
            async with asyncio.timeout(30):
                async for event in events(response):
                    if event.event is None and event.comments:
                        break  # a heartbeat comment arrived on an idle stream

        unknown = await client.get(f"{server}/api/v1/batch-calling/batch_nope/events", headers=_headers())
        assert unknown.status_code == 404 and unknown.json()["success"] is False
        # Not digits, not ASCII digits ("²" passes str.isdigit), past the ids' BIGINT (a database
        # error after the stream had started, found by a fresh user's trial).
        for last_event_id in ("x1", "99999999999999999999999", str(2**63)):
            bad = await client.get(
                f"{server}/api/v1/batch-calling/{job}/events",
                headers=_headers(**{"Last-Event-ID": last_event_id}),
            )
            assert bad.status_code == 422 and bad.json()["success"] is False, last_event_id
        superscript = await client.get(
            f"{server}/api/v1/batch-calling/{job}/events", params={"after": "\u00b2"}, headers=_headers()
        )
        assert superscript.status_code == 422 and superscript.json()["success"] is False
        anonymous = await client.get(f"{server}/api/v1/batch-calling/events")
        assert anonymous.status_code == 401 and anonymous.json()["success"] is False


async def test_an_append_is_one_statement_that_wakes_each_campaign_s_streams_once(
    container: Container,
) -> None:
    """The change log's lock, INSERT and NOTIFYs were 2 + one per campaign statements, in every
    projecting transaction; now one, with the lock still taken before any id is handed out
    (`test_concurrent_projections_reach_a_live_stream_in_id_order_all_of_them`)."""
    one, two = f"batch_{uuid.uuid4().hex}", f"batch_{uuid.uuid4().hex}"
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "campaign_changes" in statement or "pg_advisory" in statement or "SELECT pg_notify" in statement:
            statements.append(statement)

    notified: asyncio.Queue[str] = asyncio.Queue()
    async with container.engine.connect() as listener:
        raw = (await listener.get_raw_connection()).driver_connection
        await raw.add_listener(CHANGES_CHANNEL, lambda *args: notified.put_nowait(args[3]))
        event.listen(container.engine.sync_engine, "before_cursor_execute", count)
        try:
            async with make_sessionmaker(container.engine)() as session, session.begin():
                await Changes(session).append(
                    [(one, "campaign", {"n": 1}), (two, "campaign", {"n": 2}), (one, "recipient", {"n": 3})]
                )
                held = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                    )
                )
        finally:
            event.remove(container.engine.sync_engine, "before_cursor_execute", count)
        assert len(statements) == 1, statements
        assert held == 1  # the append serialised itself with the transaction's lock
        got = [await asyncio.wait_for(notified.get(), 10) for _ in range(2)]
        assert sorted(got) == sorted([one, two])
        with contextlib.suppress(TimeoutError):  # folded: no second notification for `one`
            got.append(await asyncio.wait_for(notified.get(), 0.5))
        assert len(got) == 2, got
    logged = await container.service.changes_after(0, one) + await container.service.changes_after(0, two)
    assert [c.payload["n"] for c in sorted(logged, key=lambda c: c.change_id)] == [1, 2, 3]


async def test_old_changes_are_pruned(container: Container) -> None:
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    assert await container.service.changes_after(0, job)
    pruned = await Retention(container.settings, container.uow).prune_expired(
        datetime.now(UTC) + timedelta(hours=container.settings.change_retention_hours, minutes=1)
    )
    assert pruned["campaign_changes"] >= 1
    assert await container.service.changes_after(0, job) == []


@pytest.mark.parametrize("path", ["/api/v1/batch-calling/events", "/api/v1/batch-calling/{job}/events"])
async def test_a_stream_ends_when_its_key_is_revoked_and_a_live_key_s_goes_on(
    server: str, container: Container, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # Re-checked on every wake: the change projected after the revocation must not reach the
    # revoked key's stream (with the default the stream may read up to KEY_CHECK_S more).
    monkeypatch.setattr(changes, "KEY_CHECK_S", 0.0)
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    row, doomed = await container.access.create_key("stream-revoked", Scope.READ)
    _, alive = await container.access.create_key("stream-alive", Scope.READ)
    url = f"{server}{path.format(job=job)}"
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", url, headers={"X-API-Key": doomed}) as doomed_response,
        client.stream("GET", url, headers={"X-API-Key": alive}) as alive_response,
    ):
        assert (doomed_response.status_code, alive_response.status_code) == (200, 200)
        doomed_stream, alive_stream = events(doomed_response), events(alive_response)
        if "{job}" in path:  # the job's stream opens with the job as it is
            await _take(doomed_stream, 1)
            await _take(alive_stream, 1)
        await container.projection.project(_recipient(job, 0, "dialing", 10))
        (before,) = await _take(doomed_stream, 1)
        assert before.event == "recipient"
        assert (await _take(alive_stream, 1))[0].id == before.id

        revoking = await client.delete(f"{server}/api/v1/api-keys/{row.key_id}", headers=_headers())
        assert revoking.status_code == 200
        await container.projection.project(_recipient(job, 1, "dialing", 11))
        async with asyncio.timeout(30):
            async for event in doomed_stream:  # ends: the server closed the stream
                assert event.event is None, f"the revoked key's stream went on: {event.event} {event.data}"
        (live,) = await _take(alive_stream, 1)
        assert live.json["recipient_id"] == "r1"


@pytest.mark.parametrize("path", ["/api/v1/batch-calling/events", "/api/v1/batch-calling/{job}/events"])
async def test_an_id_ahead_of_the_change_log_is_refused_not_a_stream_that_stays_silent(
    server: str, container: Container, path: str
) -> None:
    # An id from before a database reset (found by a fresh user's trial: 99999999 with the log at 50
    # was a 200 and then silence, whatever was projected).
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    url = f"{server}{path.format(job=job)}"
    async with httpx.AsyncClient(timeout=30) as client:
        last = await container.service.last_change_id()
        for ahead in (last + 1_000, last + 99_999_999):
            # The header, and the `after` query parameter that stands for it.
            for headers, params in (({"Last-Event-ID": str(ahead)}, {}), ({}, {"after": str(ahead)})):
                async with client.stream("GET", url, headers=_headers(**headers), params=params) as response:
                    assert response.status_code == 422, (ahead, headers, params)
                    body = json.loads(await response.aread())
                assert body["success"] is False and body["error"] == "Validation error"
                assert f"Last-Event-ID: {ahead} is ahead of the change log" in body["detail"]

        # The newest id is where a client that has seen everything resumes: it gets what comes next.
        async with client.stream(
            "GET", url, headers=_headers(**{"Last-Event-ID": str(await container.service.last_change_id())})
        ) as response:
            assert response.status_code == 200
            await container.projection.project(_recipient(job, 0, "dialing", 10))
            (next_change,) = await _take(events(response), 1)
        assert (next_change.event, next_change.json["recipient_id"]) == ("recipient", "r0")


async def test_an_id_sent_before_retention_pruned_the_whole_log_still_resumes(
    server: str, container: Container
) -> None:
    # "Ahead" is measured against the ids handed out, not the newest row kept: once retention has
    # pruned every change, a client's last id is still one the API sent.
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    (sent,) = await container.service.changes_after(0, job)
    await Retention(container.settings, container.uow).prune_expired(
        datetime.now(UTC) + timedelta(hours=container.settings.change_retention_hours, minutes=1)
    )
    assert await container.service.last_change_id() < sent.change_id
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "GET",
            f"{server}/api/v1/batch-calling/{job}/events",
            headers=_headers(**{"Last-Event-ID": str(sent.change_id)}),
        ) as response,
    ):
        assert response.status_code == 200
        await container.projection.project(_recipient(job, 0, "dialing", 10))
        (next_change,) = await _take(events(response), 1)
    assert int(next_change.id or 0) > sent.change_id and next_change.json["recipient_id"] == "r0"


async def test_the_console_s_stream_starts_afresh_from_an_id_ahead_of_the_log(
    server: str, container: Container
) -> None:
    # The console's EventSource reconnects by itself with its last id and cannot read a 422: an id
    # from before a database reset opens the stream as a first visit does, with the job as it is.
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 2, 0))
    async with httpx.AsyncClient(base_url=server, timeout=30) as browser:
        form = await browser.get("/console/sign-in")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, form.text
        signed_in = await browser.post("/console/sign-in", data={"api_key": API_KEY, "csrf_token": token[1]})
        assert signed_in.status_code == 303, signed_in.text
        ahead = str(await container.service.last_change_id() + 99_999_999)
        async with browser.stream(
            "GET", f"/console/campaigns/{job}/events", headers={"Last-Event-ID": ahead}
        ) as response:
            assert response.status_code == 200
            (opening,) = await _take(events(response), 1, within=10)
    assert (opening.event, opening.json["id"], opening.json["total_calls_finished"]) == ("campaign", job, 2)
    assert int(opening.id or 0) < int(ahead)


async def test_an_append_is_compiled_once_whatever_its_number_of_rows(container: Container) -> None:
    """SQLAlchemy compiles the append once and then finds it in its cache: a VALUES list of
    rows has no cache key, and compiling it again for every projecting transaction was ~8 % of
    the gateway's CPU in a campaign (bench/README, issue 17). The payloads keep their JSON."""
    job = f"batch_{uuid.uuid4().hex}"
    hits: list[str] = []
    # Only this task's statements: the projector appends other tests' changes meanwhile.
    mine: contextvars.ContextVar[bool] = contextvars.ContextVar("mine", default=False)
    mine.set(True)

    def cached(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, *args: Any) -> None:
        if mine.get() and "campaign_changes" in statement and statement.lstrip().startswith("INSERT"):
            hits.append(str(context.cache_hit))

    event.listen(container.engine.sync_engine, "before_cursor_execute", cached)
    try:
        for count in (1, 3, 2):
            async with make_sessionmaker(container.engine)() as session, session.begin():
                await Changes(session).append(
                    [
                        (job, "recipient", {"n": n, "nested": {"zones": ["Europe/London"]}})
                        for n in range(count)
                    ]
                )
    finally:
        event.remove(container.engine.sync_engine, "before_cursor_execute", cached)
    assert len(hits) == 3 and "NO_CACHE_KEY" not in " ".join(hits), hits
    assert hits[1:] == ["CacheStats.CACHE_HIT"] * 2, hits
    logged = await container.service.changes_after(0, job)
    assert [c.payload for c in logged] == [
        {"n": n, "nested": {"zones": ["Europe/London"]}} for count in (1, 3, 2) for n in range(count)
    ]


async def test_a_recipient_s_updates_reuse_one_statement_built_once(container: Container) -> None:
    """Each recipient update (three a campaign call) is written by a statement built once: built
    per event, SQLAlchemy spent ~0.5 ms constructing it and computing its cache key."""
    job = f"batch_{uuid.uuid4().hex}"
    await container.projection.project(_campaign(job, 0, 0))
    invoked: list[int] = []
    # Only this task's statements: the projector writes other tests' recipients meanwhile.
    mine: contextvars.ContextVar[bool] = contextvars.ContextVar("mine", default=False)
    mine.set(True)

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, *args: Any) -> None:
        if mine.get() and statement.lstrip().startswith("INSERT INTO gateway.campaign_recipients"):
            invoked.append(id(context.invoked_statement))

    event.listen(container.engine.sync_engine, "before_cursor_execute", seen)
    try:
        for seconds, status in enumerate(["dialing", "in_progress", "completed"], start=1):
            await container.projection.project(_recipient(job, 0, status, seconds))
    finally:
        event.remove(container.engine.sync_engine, "before_cursor_execute", seen)
    assert len(invoked) == 3 and len(set(invoked)) == 1, invoked
    async with make_sessionmaker(container.engine)() as session:
        row = await session.scalar(
            text(
                "SELECT status FROM gateway.campaign_recipients WHERE campaign_id = :c AND recipient_id = 'r0'"
            ),
            {"c": job},
        )
    assert row == "completed"
