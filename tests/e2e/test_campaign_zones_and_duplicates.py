"""Campaign time zones and duplicate numbers through the REST API over the whole stack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import poll


@pytest.fixture(scope="module")
def line(api: httpx.Client) -> dict[str, str]:
    agent = api.post("/api/v1/agents", json={"name": "Zones Agent"}).json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550177", "label": "zones", "sid": "AC" + "7" * 32, "token": "t"},
    ).json()["phone_number_id"]
    return {"agent_id": agent, "phone_number_id": number}


def _submit(api: httpx.Client, line: dict[str, str], **body: Any) -> httpx.Response:
    return api.post("/api/v1/batch-calling/submit", json={"call_name": "zones", **line} | body)


@pytest.mark.parametrize("zone", ["EST", "GMT", "Etc/GMT+5", "EST5EDT", "PST8PDT", "US/Eastern", "Etc/UTC"])
def test_a_zone_that_is_not_a_region_is_422_naming_a_region(
    api: httpx.Client, line: dict[str, str], zone: str
) -> None:
    response = _submit(api, line, recipients=[{"phone_number": "+14155551111"}], timezone=zone)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and "timezone" in body["detail"]
    assert "America/New_York" in body["detail"] and zone in body["detail"]


@pytest.mark.parametrize(
    "zone", ["America/New_York", "Australia/Perth", "America/Indiana/Indianapolis", "UTC"]
)
def test_regions_and_explicit_utc_are_accepted(api: httpx.Client, line: dict[str, str], zone: str) -> None:
    later = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
    response = _submit(
        api, line, recipients=[{"phone_number": "+14155551111"}], timezone=zone, scheduled_time_unix=later
    )
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["timezone"] == zone
    assert api.post(f"/api/v1/batch-calling/{job['id']}/cancel").status_code == 200


def test_the_same_number_twice_is_refused_naming_both_indexes(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    ana_and_ben = f"+1415{uuid.uuid4().int % 700 + 200:03d}0101"
    other = f"+1415{uuid.uuid4().int % 700 + 200:03d}0102"
    response = _submit(
        api,
        line,
        recipients=[
            {"phone_number": ana_and_ben, "name": "Ana"},
            {"phone_number": other, "name": "Cy"},
            {"phone_number": ana_and_ben, "name": "Ben"},
            {"phone_number": other, "name": "Di", "id": "di"},
        ],
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "Invalid recipients"
    assert [(p["index"], p["duplicate_of"]) for p in body["detail"]] == [(2, 0), (3, 1)]
    assert "index 0" in body["detail"][0]["error"] and body["detail"][0]["phone_number"] == ana_and_ben
    dials = sim.get("/_sim/calls/stats").json()["dials_by_number"]
    assert ana_and_ben not in dials and other not in dials


def test_calls_show_the_zones_a_recipient_waits_in(api: httpx.Client, line: dict[str, str]) -> None:
    # A Perth landline (+61 8: Adelaide and Perth for libphonenumber) and a window open only on a
    # weekday three days away: it waits, and the results say for which zones.
    perth = f"+618920{uuid.uuid4().int % 10**4:04d}1"
    day = (datetime.now(UTC) + timedelta(days=3)).weekday()
    response = _submit(
        api,
        line,
        recipients=[{"phone_number": perth, "name": "Perth"}],
        calling_window={"start": "09:00", "end": "20:00", "days": [day]},
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["id"]

    def waiting() -> dict[str, Any] | None:
        calls = api.get(f"/api/v1/batch-calling/{job_id}/calls").json()["calls"]
        return calls[0] if calls and calls[0]["time_zones"] else None

    call = poll(waiting)
    assert call["status"] == "scheduled" and call["to_number"] == perth
    assert call["time_zones"] == ["Australia/Adelaide", "Australia/Perth"]
    assert api.post(f"/api/v1/batch-calling/{job_id}/cancel").status_code == 200
