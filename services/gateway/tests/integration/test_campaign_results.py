"""A campaign's results (issue 13, "Results out"): every attempt, the last answered call's post-call
analysis, the submitted name, e-mail and dynamic variables, the zones; filters by status and
outcome; CSV by `calls.csv` and by `Accept: text/csv`, paged so 100,000 recipients never sit in
memory at once. Real PostgreSQL and the gateway's real request path; the events the other services
would publish are handed to the projector, duplicated and out of order where that can happen."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from contracts.campaigns import (
    CallerIdStats,
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignSnapshot,
    CampaignUpdated,
    ClosedRecipient,
    DoNotCallAdded,
    StagedRecipient,
)
from contracts.telephony import CallPlaced, CallStatusChanged
from contracts.webhooks import PostCallWebhookReceived
from gateway import results
from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.models import outbox

from .conftest import API_KEY, seed_agent_and_number

pytestmark = pytest.mark.integration

AGENT = "agent_results"
PHONE = "pn_results"
NOW = int(time.time())


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    await seed_agent_and_number(
        container,
        agent_id=AGENT,
        name="Results",
        first_message="Hello",
        phone_number_id=PHONE,
        label="results",
    )
    app = create_app(container)  # lifespan not run: only the request path is exercised
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"X-API-Key": API_KEY},
        timeout=120,
    ) as client:
        yield client


def _numbers(count: int) -> list[str]:
    base = uuid.uuid4().int % 700 + 200
    return [f"+1415{base:03d}{i:04d}" for i in range(count)]


async def _submit(api: httpx.AsyncClient, container: Container, recipients: list[dict[str, Any]]) -> str:
    """Submit through the real route; the campaign id is read from the command it queued."""
    call_name = f"results {uuid.uuid4().hex[:8]}"
    response = await api.post(
        "/api/v1/batch-calling/submit",
        json={"call_name": call_name, "agent_id": AGENT, "phone_number_id": PHONE, "recipients": recipients},
    )
    assert response.status_code in (200, 202), response.text
    async with container.engine.connect() as connection:
        payloads = (await connection.execute(select(outbox.c.payload))).scalars().all()
    for payload in payloads:
        command = json.loads(bytes(payload))
        if command.get("type") == "campaign.submit" and command["call_name"] == call_name:
            campaign_id: str = command["campaign_id"]
            return campaign_id
    raise AssertionError("no campaign.submit queued")


def _at(seconds: int) -> dict[str, Any]:
    return {"occurred_at": datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=seconds)}


def _campaign(campaign_id: str, total: int) -> CampaignUpdated:
    return CampaignUpdated(
        campaign=CampaignSnapshot(
            campaign_id=campaign_id,
            name="results",
            agent_id=AGENT,
            phone_number_id=PHONE,
            status="running",
            created_at_unix=NOW,
            retry_count=2,
            total_calls_scheduled=total,
            total_calls_dispatched=total,
            total_calls_finished=0,
            last_updated_at_unix=NOW,
        ),
        **_at(0),
    )


def _recipient(
    campaign_id: str, rid: str, position: int, number: str, **fields: Any
) -> CampaignRecipientUpdated:
    at = _at(fields.pop("after", 1))
    return CampaignRecipientUpdated(
        campaign_id=campaign_id,
        recipient_id=rid,
        position=position,
        to_number=number,
        time_zones=["America/Los_Angeles"],
        **fields,
        **at,
    )


def _placed(campaign_id: str, rid: str, number: str, attempt: int, conversation_id: str) -> CallPlaced:
    return CallPlaced(
        conversation_id=conversation_id,
        provider="twilio",
        agent_id=AGENT,
        phone_number_id=PHONE,
        to_number=number,
        campaign_id=campaign_id,
        recipient_id=rid,
        attempt=attempt,
        placed_at_unix=NOW + attempt * 100,
        **_at(attempt * 100),
    )


def _ended(conversation_id: str, status: str, attempt: int, **fields: Any) -> CallStatusChanged:
    return CallStatusChanged(
        conversation_id=conversation_id,
        status=status,  # type: ignore[arg-type]
        **fields,
        **_at(attempt * 100 + 60),
    )


def _analysis(conversation_id: str, **analysis: Any) -> PostCallWebhookReceived:
    return PostCallWebhookReceived(
        message_id=uuid.uuid4().hex,
        webhook_type="post_call_transcription",
        conversation_id=conversation_id,
        agent_id=AGENT,
        event_timestamp=NOW + 500,
        conversation_status="done",
        call_duration_secs=61,
        termination_reason="end_call tool was called.",
        **analysis,
    )


async def _two_attempts_then_booked(
    api: httpx.AsyncClient, container: Container
) -> tuple[str, list[str], dict[str, str]]:
    """Ana: no answer, then answered and booked. Ben: answered, said no. Cy: still scheduled."""
    ana, ben, cy = _numbers(3)
    campaign_id = await _submit(
        api,
        container,
        [
            {
                "phone_number": ana,
                "name": "Ana Alves",
                "email": "ana@example.com",
                "dynamic_variables": {"customer_name": "Ana", "plan": "gold"},
            },
            {
                "phone_number": ben,
                "name": "Ben",
                "dynamic_variables": {"customer_name": "Ben", "city": "Oslo"},
            },
            {"phone_number": cy},
        ],
    )
    async with container.engine.connect() as connection:
        ids = (
            (
                await connection.execute(
                    text(
                        "SELECT recipient_id FROM gateway.campaign_recipients WHERE campaign_id = :c ORDER BY position"
                    ),
                    {"c": campaign_id},
                )
            )
            .scalars()
            .all()
        )
    rid = {"ana": ids[0], "ben": ids[1], "cy": ids[2]}
    conv = {k: f"conv_{k}_{uuid.uuid4().hex[:8]}" for k in ("ana1", "ana2", "ben1")}
    analysis_ana = _analysis(
        conv["ana2"],
        call_successful="success",
        transcript_summary="Ana booked a visit.",
        data_collection={"outcome": "booked", "visit_date": "2026-02-01"},
        evaluation_criteria={"goal": {"result": "success", "rationale": "Booked."}},
    )
    events = [
        _campaign(campaign_id, 3),
        # The analysis may be projected before its call.
        analysis_ana,
        _placed(campaign_id, rid["ana"], ana, 1, conv["ana1"]),
        _ended(conv["ana1"], "no_answer", 1, reason="no-answer"),
        _placed(campaign_id, rid["ana"], ana, 2, conv["ana2"]),
        _ended(
            conv["ana2"],
            "completed",
            2,
            duration_seconds=61,
            outcome="booked",
            reason="end_call tool was called.",
        ),
        _placed(campaign_id, rid["ben"], ben, 1, conv["ben1"]),
        _ended(conv["ben1"], "completed", 1, duration_seconds=20, outcome="declined"),
        _analysis(
            conv["ben1"],
            call_successful="failure",
            transcript_summary="Ben declined.",
            data_collection={"outcome": "declined", "callback": None},
        ),
        _recipient(
            campaign_id,
            rid["ana"],
            0,
            ana,
            status="completed",
            conversation_id=conv["ana2"],
            duration_seconds=61,
            outcome="booked",
            retry_count=1,
            after=300,
        ),
        _recipient(
            campaign_id,
            rid["ben"],
            1,
            ben,
            status="completed",
            conversation_id=conv["ben1"],
            duration_seconds=20,
            outcome="declined",
            after=300,
        ),
    ]
    for event in events:
        await container.projection.project(event)
    # A redelivered webhook (same message) changes nothing.
    await container.projection.project(analysis_ana)
    return campaign_id, [ana, ben, cy], conv


async def test_each_recipient_shows_every_attempt_and_the_last_answered_calls_analysis(
    api: httpx.AsyncClient, container: Container
) -> None:
    campaign_id, (ana, ben, cy), conv = await _two_attempts_then_booked(api, container)

    response = await api.get(f"/api/v1/batch-calling/{campaign_id}/calls")
    assert response.status_code == 200, response.text
    calls = response.json()["calls"]
    assert [c["to_number"] for c in calls] == [ana, ben, cy]
    first = calls[0]
    # The spec's fields, as they were.
    assert {
        k: first[k]
        for k in ("to_number", "status", "conversation_id", "duration_seconds", "outcome", "retry_count")
    } == {
        "to_number": ana,
        "status": "completed",
        "conversation_id": conv["ana2"],
        "duration_seconds": 61,
        "outcome": "booked",
        "retry_count": 1,
    }
    assert (first["name"], first["email"]) == ("Ana Alves", "ana@example.com")
    assert first["dynamic_variables"] == {"customer_name": "Ana", "plan": "gold"}
    assert first["time_zones"] == ["America/Los_Angeles"]
    assert first["attempts"] == [
        {
            "attempt": 1,
            "to_number": ana,
            "status": "no_answer",
            "conversation_id": conv["ana1"],
            "started_at_unix": NOW + 100,
            "ended_at_unix": NOW + 160,
            "duration_seconds": None,
            "termination_reason": "no-answer",
        },
        {
            "attempt": 2,
            "to_number": ana,
            "status": "completed",
            "conversation_id": conv["ana2"],
            "started_at_unix": NOW + 200,
            "ended_at_unix": NOW + 260,
            "duration_seconds": 61,
            "termination_reason": "end_call tool was called.",
        },
    ]
    assert first["analysis"] == {
        "conversation_id": conv["ana2"],
        "call_successful": "success",
        "transcript_summary": "Ana booked a visit.",
        "data_collection_results": {"outcome": "booked", "visit_date": "2026-02-01"},
        "evaluation_criteria_results": {"goal": {"result": "success", "rationale": "Booked."}},
    }
    assert calls[1]["analysis"]["data_collection_results"] == {"outcome": "declined", "callback": None}
    # Not called yet: no attempts, no analysis, its submission still shown.
    assert (calls[2]["status"], calls[2]["attempts"], calls[2]["analysis"]) == ("scheduled", [], None)
    assert calls[2]["dynamic_variables"] == {}

    # The call itself shows the analysis too (the transcript has its own test).
    call = (await api.get(f"/api/v1/calls/{conv['ana2']}")).json()
    assert call["analysis"]["data_collection_results"]["visit_date"] == "2026-02-01"
    assert (await api.get(f"/api/v1/calls/{conv['ana1']}")).json()["analysis"] is None


async def test_results_filter_by_status_and_outcome_and_page_in_order(
    api: httpx.AsyncClient, container: Container
) -> None:
    campaign_id, (ana, ben, cy), _ = await _two_attempts_then_booked(api, container)
    url = f"/api/v1/batch-calling/{campaign_id}/calls"

    async def numbers(**params: Any) -> list[str]:
        response = await api.get(url, params=params)
        assert response.status_code == 200, response.text
        return [c["to_number"] for c in response.json()["calls"]]

    assert await numbers(outcome="booked") == [ana]
    assert await numbers(outcome="declined") == [ben]
    assert await numbers(outcome="no such outcome") == []
    assert await numbers(status="completed") == [ana, ben]
    assert await numbers(status="scheduled") == [cy]
    assert await numbers(status="completed", outcome="declined") == [ben]

    page = (await api.get(url, params={"page_size": 2})).json()
    rest = (await api.get(url, params={"page_size": 2, "cursor": page["cursor"]})).json()
    assert [c["to_number"] for c in page["calls"] + rest["calls"]] == [ana, ben, cy]
    assert rest["cursor"] is None

    bad = await api.get(url, params={"status": "booked"})
    assert bad.status_code == 422 and bad.json()["success"] is False
    missing = await api.get("/api/v1/batch-calling/batch_missing/calls.csv")
    assert missing.status_code == 404 and missing.json()["success"] is False


async def test_a_filter_given_more_than_once_matches_any_of_its_values(
    api: httpx.AsyncClient, container: Container
) -> None:
    # The last value used to win silently: ?status=completed&status=scheduled was status=scheduled.
    campaign_id, (ana, ben, cy), _ = await _two_attempts_then_booked(api, container)
    url = f"/api/v1/batch-calling/{campaign_id}/calls"
    both = await api.get(f"{url}?status=completed&status=scheduled")
    assert both.status_code == 200, both.text
    assert [c["to_number"] for c in both.json()["calls"]] == [ana, ben, cy]
    outcomes = await api.get(f"{url}?outcome=booked&outcome=declined&status=completed")
    assert [c["to_number"] for c in outcomes.json()["calls"]] == [ana, ben]
    csv_text = (await api.get(f"{url}.csv?status=scheduled&status=skipped_dnc")).text
    assert cy in csv_text and ana not in csv_text and ben not in csv_text
    bad = await api.get(f"{url}?status=completed&status=booked")
    assert bad.status_code == 422 and bad.json()["success"] is False, bad.text


async def test_the_csv_has_a_row_per_recipient_and_a_column_per_data_collection_item(
    api: httpx.AsyncClient, container: Container
) -> None:
    campaign_id, (ana, ben, cy), conv = await _two_attempts_then_booked(api, container)

    response = await api.get(f"/api/v1/batch-calling/{campaign_id}/calls.csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="{campaign_id}.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [
        *results.FIXED_COLUMNS,
        "data_collection.callback",
        "data_collection.outcome",
        "data_collection.visit_date",
        "dynamic_variables.city",
        "dynamic_variables.customer_name",
        "dynamic_variables.plan",
    ]
    assert [r["to_number"] for r in rows] == [ana, ben, cy]
    assert {
        k: rows[0][k] for k in ("name", "status", "outcome", "attempts", "conversation_id", "call_successful")
    } == {
        "name": "Ana Alves",
        "status": "completed",
        "outcome": "booked",
        "attempts": "2",
        "conversation_id": conv["ana2"],
        "call_successful": "success",
    }
    assert (rows[0]["data_collection.visit_date"], rows[0]["dynamic_variables.plan"]) == (
        "2026-02-01",
        "gold",
    )
    assert (rows[1]["data_collection.visit_date"], rows[1]["dynamic_variables.city"]) == ("", "Oslo")
    assert (rows[0]["started_at_unix"], rows[0]["termination_reason"]) == (
        str(NOW + 200),
        "end_call tool was called.",
    )
    assert rows[0]["time_zones"] == "America/Los_Angeles"
    assert rows[2]["attempts"] == "0" and rows[2]["call_successful"] == ""

    # The same by content negotiation on /calls, with the filters.
    negotiated = await api.get(
        f"/api/v1/batch-calling/{campaign_id}/calls",
        params={"outcome": "declined"},
        headers={"Accept": "text/csv"},
    )
    assert negotiated.headers["content-type"].startswith("text/csv")
    assert [r["to_number"] for r in csv.DictReader(io.StringIO(negotiated.text))] == [ben]
    # A browser's Accept (JSON among others) still gets JSON.
    assert (
        "calls"
        in (
            await api.get(
                f"/api/v1/batch-calling/{campaign_id}/calls", headers={"Accept": "application/json, text/csv"}
            )
        ).json()
    )


async def test_a_100000_recipient_csv_is_read_a_page_at_a_time(
    api: httpx.AsyncClient, container: Container
) -> None:
    campaign_id = f"batch_{uuid.uuid4().hex}"
    total = 100_000
    await container.projection.project(_campaign(campaign_id, total))
    async with container.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO gateway.campaign_recipients"
                " (campaign_id, recipient_id, position, to_number, status, retry_count, dynamic_variables)"
                " SELECT :c, 'r' || i, i, '+1415' || lpad(i::text, 7, '0'), 'scheduled', 0,"
                " jsonb_build_object('n', i)"
                " FROM generate_series(0, :n - 1) AS i"
            ),
            {"c": campaign_id, "n": total},
        )
    pages = [len(page) async for page in container.service.all_results(campaign_id, None, None)]
    assert pages == [1000] * 100  # never more than a page in memory

    response = await api.get(f"/api/v1/batch-calling/{campaign_id}/calls.csv")
    assert response.status_code == 200
    reader = csv.reader(io.StringIO(response.text))
    header = next(reader)
    assert header[-1] == "dynamic_variables.n"
    positions = [int(row[1]) for row in reader]
    assert positions == list(range(total))


async def test_a_held_recipient_shows_why_and_until_when_and_the_job_its_pool_and_budget(
    api: httpx.AsyncClient, container: Container
) -> None:
    number = _numbers(1)[0]
    campaign_id = await _submit(api, container, [{"phone_number": number}])
    pool = [
        CallerIdStats(phone_number_id=PHONE, dials=4, answered=1, answer_rate=0.25, daily_cap=100),
        CallerIdStats(phone_number_id="pn_other", dials=0, answered=0, answer_rate=None),
    ]
    snapshot = _campaign(campaign_id, 1).campaign.model_copy(
        update={"phone_numbers": pool, "max_total_minutes": 30.0, "call_minutes_used": 2.5}
    )
    await container.projection.project(CampaignUpdated(campaign=snapshot, **_at(0)))
    held = _recipient(
        campaign_id,
        "r0",
        0,
        number,
        status="scheduled",
        waiting_reason="quiet_hours",
        next_attempt_at_unix=NOW + 3600,
    )
    await container.projection.project(held)

    (call,) = (await api.get(f"/api/v1/batch-calling/{campaign_id}/calls")).json()["calls"]
    assert (call["status"], call["waiting_reason"], call["next_attempt_at_unix"]) == (
        "scheduled",
        "quiet_hours",
        NOW + 3600,
    )
    (row,) = list(
        csv.DictReader(io.StringIO((await api.get(f"/api/v1/batch-calling/{campaign_id}/calls.csv")).text))
    )
    assert row["waiting_reason"] == "quiet_hours"
    job = (await api.get(f"/api/v1/batch-calling/{campaign_id}")).json()
    assert job["phone_numbers"] == [p.model_dump() for p in pool]
    assert (job["max_total_minutes"], job["call_minutes_used"]) == (30.0, 2.5)

    # Dialled: no longer waiting.
    await container.projection.project(_recipient(campaign_id, "r0", 0, number, status="dialing", after=2))
    (call,) = (await api.get(f"/api/v1/batch-calling/{campaign_id}/calls")).json()["calls"]
    assert (call["status"], call["waiting_reason"], call["next_attempt_at_unix"]) == ("dialing", None, None)


async def test_what_the_callee_asked_for_shows_in_the_results_and_the_do_not_call_list(
    api: httpx.AsyncClient, container: Container
) -> None:
    """Issue 15: a recipient that opted out by voice (and its number's do-not-call source), one
    that asked for a callback; the submission's analysis rules reach the campaign command."""
    out, back = _numbers(2)
    rules = [
        {"value": "call_back_later", "action": "retry", "delay_s": 600},
        {"value": "wrong_person", "action": "finish"},
    ]
    call_name = f"callee {uuid.uuid4().hex[:8]}"
    response = await api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": call_name,
            "agent_id": AGENT,
            "phone_number_id": PHONE,
            "recipients": [{"phone_number": out}, {"phone_number": back}],
            "analysis_rules": rules,
        },
    )
    assert response.status_code in (200, 202), response.text
    async with container.engine.connect() as connection:
        payloads = [
            json.loads(bytes(p)) for p in (await connection.execute(select(outbox.c.payload))).scalars()
        ]
    (submit,) = [p for p in payloads if p.get("type") == "campaign.submit" and p["call_name"] == call_name]
    assert submit["analysis_rules"] == [
        {"field": "outcome", "value": "call_back_later", "action": "retry", "delay_s": 600},
        {"field": "outcome", "value": "wrong_person", "action": "finish", "delay_s": 3600},
    ]
    campaign_id = submit["campaign_id"]
    bad = await api.post(
        "/api/v1/batch-calling/validate",
        json={
            "call_name": "x",
            "agent_id": AGENT,
            "phone_number_id": PHONE,
            "recipients": [{"phone_number": out}],
            "analysis_rules": [{"value": "x", "action": "sometimes"}],
        },
    )
    assert bad.status_code == 422 and bad.json()["success"] is False

    asked = NOW + 86_400
    await container.projection.project(_campaign(campaign_id, 2))
    conversation = f"conv_{uuid.uuid4().hex[:10]}"
    await container.projection.project(
        _recipient(campaign_id, "r0", 0, out, status="opted_out", conversation_id=conversation)
    )
    await container.projection.project(
        _recipient(
            campaign_id,
            "r1",
            1,
            back,
            status="scheduled",
            callback_at_unix=asked,
            callback_requested="tomorrow at 5pm",
            next_attempt_at_unix=asked,
        )
    )
    await container.projection.project(
        DoNotCallAdded(
            phone_number=out,
            reason="Opted out by voice",
            added_at_unix=NOW,
            source="voice",
            conversation_id=conversation,
            campaign_id=campaign_id,
            recipient_id="r0",
        )
    )
    url = f"/api/v1/batch-calling/{campaign_id}/calls"
    calls = (await api.get(url)).json()["calls"]
    assert [(c["status"], c["callback_at_unix"], c["callback_requested"]) for c in calls] == [
        ("opted_out", None, None),
        ("scheduled", asked, "tomorrow at 5pm"),
    ]
    opted = (await api.get(url, params={"status": "opted_out"})).json()["calls"]
    assert [c["to_number"] for c in opted] == [out]
    listed: list[dict[str, Any]] = []
    cursor = None
    while True:  # every page: the suite's database holds other tests' numbers too
        page = (await api.get("/api/v1/do-not-call", params={"cursor": cursor} if cursor else {})).json()
        listed += page["numbers"]
        if (cursor := page["cursor"]) is None:
            break
    (row,) = [n for n in listed if n["phone_number"] == out]
    assert (row["source"], row["conversation_id"]) == ("voice", conversation)


async def test_the_call_control_tools_are_created_through_provisioning(
    api: httpx.AsyncClient, container: Container
) -> None:
    for path, kind in (("/api/v1/tools/callback", "callback"), ("/api/v1/tools/opt-out", "opt_out")):
        base = f"https://{uuid.uuid4().hex[:8]}.example.com/api/v1"
        response = await api.post(path, json={"webhook_base_url": base})
        assert response.status_code in (200, 202), response.text
        async with container.engine.connect() as connection:
            payloads = [
                json.loads(bytes(p)) for p in (await connection.execute(select(outbox.c.payload))).scalars()
            ]
        queued = [(p["type"], p["kind"]) for p in payloads if p.get("webhook_base_url") == base]
        assert queued == [("tool.create_call_tool", kind)]


def _staged(campaign_id: str, numbers: list[str], after: int, **statuses: str) -> CampaignRecipientsStaged:
    return CampaignRecipientsStaged(
        campaign_id=campaign_id,
        part_index=0,
        part_count=1,
        recipients=[
            StagedRecipient(
                recipient_id=f"r{i}",
                position=i,
                to_number=number,
                status=statuses.get(f"r{i}", "scheduled"),  # type: ignore[arg-type]
                time_zones=["America/Los_Angeles"],
                reason="Invalid phone number" if f"r{i}" in statuses else None,
            )
            for i, number in enumerate(numbers)
        ],
        **_at(after),
    )


def _closed(campaign_id: str, numbers: dict[int, str], after: int) -> CampaignRecipientsClosed:
    return CampaignRecipientsClosed(
        campaign_id=campaign_id,
        status="cancelled",
        reason="Campaign cancelled",
        part_index=0,
        part_count=1,
        recipients=[
            ClosedRecipient(recipient_id=f"r{i}", position=i, to_number=n, time_zones=["America/Los_Angeles"])
            for i, n in numbers.items()
        ],
        **_at(after),
    )


async def _statuses(api: httpx.AsyncClient, campaign_id: str) -> list[tuple[str, str | None]]:
    response = await api.get(f"/api/v1/batch-calling/{campaign_id}/calls")
    assert response.status_code == 200, response.text
    return [(c["status"], c.get("reason")) for c in response.json()["calls"]]


async def test_bulk_recipient_events_alone_shape_the_recipients(
    api: httpx.AsyncClient, container: Container
) -> None:
    """Staged and closed in bulk, as the campaigns service announces them: a cancelled snapshot
    alone closes nobody (nothing is inferred), the closed event does, once, and never over a newer
    state; the submitted names and variables stay."""
    numbers = _numbers(4)
    campaign_id = await _submit(
        api,
        container,
        [
            {"phone_number": n, "name": f"N{i}", "dynamic_variables": {"i": str(i)}}
            for i, n in enumerate(numbers)
        ],
    )
    await container.projection.project(_campaign(campaign_id, 4))
    await container.projection.project(_staged(campaign_id, numbers, 1, r3="failed"))
    assert await _statuses(api, campaign_id) == [("scheduled", None)] * 3 + [
        ("failed", "Invalid phone number")
    ]

    # r0 was dialled and finished before the cancel; the cancel's snapshot comes with no inference.
    await container.projection.project(
        _recipient(campaign_id, "r0", 0, numbers[0], status="completed", after=50)
    )
    cancelled = _campaign(campaign_id, 4).campaign.model_copy(update={"status": "cancelled"})
    await container.projection.project(CampaignUpdated(campaign=cancelled, **_at(61)))
    assert [s for s, _ in await _statuses(api, campaign_id)] == [
        "completed",
        "scheduled",
        "scheduled",
        "failed",
    ]

    closed = _closed(campaign_id, {1: numbers[1], 2: numbers[2]}, 60)
    await container.projection.project(closed)
    await container.projection.project(closed)  # redelivered: nothing new
    # An older bulk event (a stale replay naming r0) never overwrites r0's newer final state.
    await container.projection.project(_closed(campaign_id, {0: numbers[0]}, 40))
    expected = [
        ("completed", None),
        ("cancelled", "Campaign cancelled"),
        ("cancelled", "Campaign cancelled"),
        ("failed", "Invalid phone number"),
    ]
    assert await _statuses(api, campaign_id) == expected
    calls = (await api.get(f"/api/v1/batch-calling/{campaign_id}/calls")).json()["calls"]
    assert [c["name"] for c in calls] == ["N0", "N1", "N2", "N3"]
    assert calls[1]["dynamic_variables"] == {"i": "1"}

    # The live streams hear of each recipient the bulk event closed, once.
    async with container.engine.connect() as connection:
        changed = (
            (
                await connection.execute(
                    text(
                        "SELECT payload->>'recipient_id' FROM gateway.campaign_changes "
                        "WHERE campaign_id = :c AND kind = 'recipient' ORDER BY change_id"
                    ),
                    {"c": campaign_id},
                )
            )
            .scalars()
            .all()
        )
    assert changed == ["r0", "r1", "r2"]


async def test_recipients_of_a_campaign_submitted_elsewhere_come_from_its_events(
    api: httpx.AsyncClient, container: Container
) -> None:
    """A campaign published straight onto the commands topic: the gateway staged nothing, the
    events alone give every recipient."""
    campaign_id = f"batch_{uuid.uuid4().hex}"
    numbers = _numbers(2)
    await container.projection.project(_campaign(campaign_id, 2))
    await container.projection.project(_staged(campaign_id, numbers, 1))
    await container.projection.project(_closed(campaign_id, {0: numbers[0], 1: numbers[1]}, 2))
    assert await _statuses(api, campaign_id) == [("cancelled", "Campaign cancelled")] * 2
