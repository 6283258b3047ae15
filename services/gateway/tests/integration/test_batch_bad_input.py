"""A campaign submission a client got wrong is a 422 before anything is published: a scheduled time
past what can be stored reached the campaigns service as a poison command (dead letter, 500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.schemas import LAST_UNIX_SECOND

from .conftest import API_KEY

pytestmark = pytest.mark.integration


def _submission(**extra: Any) -> dict[str, Any]:
    # An unknown agent: a body that passes validation reaches the route and answers 404, so a 422
    # proves the body itself was refused.
    return {
        "call_name": "c",
        "agent_id": "agent_missing",
        "phone_number_id": "phnum_missing",
        "recipients": [{"phone_number": "+14155552672"}],
        **extra,
    }


async def _post(container: Container, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post("/api/v1/batch-calling/submit", json=body, headers={"X-API-Key": API_KEY})


@pytest.mark.parametrize(
    "scheduled",
    [
        99_999_999_999_999_999_999_999,  # the typo found by hand: beyond bigint, a dead letter and a 500
        2**63,  # one past bigint
        2**63 - 1,  # fits bigint, but no datetime
        LAST_UNIX_SECOND + 1,
        -1,
    ],
)
async def test_a_scheduled_time_that_cannot_be_a_date_is_422(container: Container, scheduled: int) -> None:
    response = await _post(container, _submission(scheduled_time_unix=scheduled))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "Validation error"
    assert "scheduled_time_unix" in body["detail"]


@pytest.mark.parametrize("scheduled", [0, 1_795_995_385, LAST_UNIX_SECOND])
async def test_a_scheduled_time_within_the_calendar_reaches_the_route(
    container: Container, scheduled: int
) -> None:
    response = await _post(container, _submission(scheduled_time_unix=scheduled))
    assert response.status_code == 404, response.text  # validated; the unknown agent answers
    assert response.json()["error"] == "Agent not found: agent_missing"


async def _post_raw(container: Container, path: str, raw: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        return await client.post(
            path, content=raw, headers={"X-API-Key": API_KEY, "Content-Type": "application/json"}
        )


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
async def test_a_dynamic_variable_that_is_not_a_json_number_is_422(
    container: Container, value: bytes
) -> None:
    """Python reads NaN and 1e999 (infinity) as floats; neither is JSON, so neither can go on to
    ElevenLabs (serialised as null, the variable silently lost). Refused with the field named.
    (A campaign's recipients: tests/unit/test_intake.py.)"""
    raw = (
        b'{"agent_id": "agent_missing", "agent_phone_number_id": "phnum_missing", '
        b'"to_number": "+14155552672", "dynamic_variables": {"total": %s}}'
    ) % value
    response = await _post_raw(container, "/api/v1/phone-numbers/twilio/outbound-call", raw)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and "dynamic_variables" in body["detail"], body


@pytest.mark.parametrize(
    "window",
    [
        {"start": "09:00", "end": "17:00", "days": [9]},  # was wrapped to Wednesday
        {"start": "09:00", "end": "17:00", "days": [-1]},  # was wrapped to Sunday
        {"start": "09:00", "end": "17:00", "days": [7]},
        {"start": "09:00", "end": "17:00", "days": []},  # never opens: every recipient failed
        {"start": "09:00", "end": "17:00", "days": [0, 1, 2, 3, 4, 5, 6, 0]},
        {"start": "24:00", "end": "17:00"},
        {"start": "9:00", "end": "17:00"},
    ],
)
async def test_a_calling_window_that_cannot_be_meant_is_422(
    container: Container, window: dict[str, Any]
) -> None:
    response = await _post(container, _submission(calling_window=window))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "Validation error"
    assert "calling_window" in body["detail"]


@pytest.mark.parametrize(
    "window",
    [
        {"start": "09:00", "end": "17:00", "days": [0, 6]},
        {"start": "22:00", "end": "06:00"},  # across midnight
        {"start": "00:00", "end": "00:00"},  # start equal to end: open all day
    ],
)
async def test_a_calling_window_of_real_days_and_hours_reaches_the_route(
    container: Container, window: dict[str, Any]
) -> None:
    response = await _post(container, _submission(calling_window=window))
    assert response.status_code == 404, response.text  # validated; the unknown agent answers


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (b"NaN", "invalid char in json text. (NaN and Infinity are not JSON; strings take double quotes)"),
        (
            b"Infinity",
            "invalid char in json text. (NaN and Infinity are not JSON; strings take double quotes)",
        ),
        (b"-Infinity", "a digit is required after the minus sign. (-Infinity is not JSON)"),
        (b"1e999", "numeric (floating point) overflow (beyond the range of a 64-bit float)"),
    ],
)
async def test_a_budget_that_is_no_number_is_called_that_not_out_of_range(
    container: Container, value: bytes, problem: str
) -> None:
    raw = (
        b'{"call_name": "c", "agent_id": "agent_missing", "phone_number_id": "phnum_missing", '
        b'"recipients": [{"phone_number": "+14155552672"}], "max_total_minutes": %s}'
    ) % value
    response = await _post_raw(container, "/api/v1/batch-calling/submit", raw)
    assert response.status_code == 422, response.text
    # The member is named even though the body cannot be parsed (gateway.jsonbody).
    detail = response.json()["detail"]
    assert detail.startswith("body.max_total_minutes: the body is not JSON: ") and detail.endswith(problem)


async def test_a_key_rate_that_is_no_number_is_called_that(container: Container) -> None:
    response = await _post_raw(
        container, "/api/v1/api-keys", b'{"name": "k", "scope": "read", "rate_limit_per_s": NaN}'
    )
    assert response.status_code == 422, response.text
    assert (
        response.json()["detail"]
        == "body.rate_limit_per_s: must be a finite number (NaN and infinity are not JSON)"
    )


@pytest.mark.parametrize(
    ("zone", "said"),
    [
        ("Mars/Olympus", "Unknown time zone 'Mars/Olympus': use an IANA region such as America/New_York"),
        ("EST", "'EST' is not an IANA region: abbreviations"),
    ],
)
async def test_a_time_zone_problem_reads_as_said_without_pydantics_prefix(
    container: Container, zone: str, said: str
) -> None:
    response = await _post(container, _submission(timezone=zone))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"body.timezone: {said}") and "Value error" not in detail


@pytest.mark.parametrize("cap", [0, 100_001, 2**31, 250518570743])
async def test_a_daily_cap_past_what_a_number_can_dial_is_422(container: Container, cap: int) -> None:
    response = await _post(
        container,
        _submission(phone_number_ids=["phnum_a", "phnum_b"], phone_number_daily_caps={"phnum_a": cap}),
    )
    assert response.status_code == 422, response.text
    assert "phone_number_daily_caps" in response.json()["detail"]
