"""Campaigns from spreadsheets over the whole stack (issue 13, "Spreadsheets in"): a Google Sheets
CSV and an Excel workbook become campaigns whose calls carry the rows' columns as dynamic
variables; a spreadsheet with problems is refused naming rows and columns, and nothing rings."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openpyxl import Workbook

from tests.e2e.conftest import poll


@pytest.fixture(scope="module")
def line(api: httpx.Client) -> dict[str, str]:
    agent = api.post(
        "/api/v1/agents", json={"name": "Sheets Agent", "first_message": "Hello {{customer_name}}!"}
    ).json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550166", "label": "sheets", "sid": "AC" + "6" * 32, "token": "t"},
    ).json()["phone_number_id"]
    return {"agent_id": agent, "phone_number_id": number}


def _exchange() -> int:
    return uuid.uuid4().int % 700 + 200  # a NANP exchange never starts with 0 or 1


def _upload(
    api: httpx.Client, path: str, content: bytes, name: str, line: dict[str, str], **fields: Any
) -> httpx.Response:
    return api.post(
        f"/api/v1/batch-calling/{path}",
        files={"file": (name, content, "text/csv" if name.endswith(".csv") else "application/octet-stream")},
        data={"call_name": f"sheet {name}", **line, **{k: str(v) for k, v in fields.items()}},
    )


def test_a_google_sheets_csv_becomes_a_campaign_whose_calls_carry_its_columns(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    base = _exchange()
    # National numbers (ending in 1-3: the simulator completes them), read with default_region.
    content = (
        "Phone Number,customer_name,appointment\n"
        f'(415) {base:03d}-0011,Ana,"Monday, 10:00"\n'
        f"415-{base:03d}-0012,Ben,Tuesday\n"
        f"+1 415 {base:03d} 0013,Cy,Wednesday\n"
    ).encode()
    response = _upload(api, "submit", content, "Reminders - Sheet1.csv", line, default_region="US")
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["total_calls_scheduled"] == 3
    report = job["report"]
    assert report["counts"]["converted"] == 3
    assert [(r["row"], r["phone_number"]) for r in report["recipients"]] == [
        (2, f"+1415{base:03d}0011"),
        (3, f"+1415{base:03d}0012"),
        (4, f"+1415{base:03d}0013"),
    ]
    assert report["time_zones"] == [{"time_zones": ["America/Los_Angeles"], "recipients": 3}]

    final = poll(
        lambda: (j := api.get(f"/api/v1/batch-calling/{job['id']}").json())["status"] == "completed" and j
    )
    assert final["total_calls_finished"] == 3
    calls = api.get(f"/api/v1/batch-calling/{job['id']}/calls").json()["calls"]
    assert sorted(c["recipient_id"] for c in calls) == ["row2", "row3", "row4"]
    dialled = sim.get("/_sim/calls", params={"to_number": f"+1415{base:03d}0011"}).json()["calls"]
    variables = dialled[0]["request"]["conversation_initiation_client_data"]["dynamic_variables"]
    assert variables["customer_name"] == "Ana" and variables["appointment"] == "Monday, 10:00"


def test_a_spreadsheet_with_problems_is_refused_naming_rows_and_columns_and_nothing_rings(
    api: httpx.Client, sim: httpx.Client, line: dict[str, str]
) -> None:
    base = _exchange()
    good, twice = f"+1415{base:03d}0021", f"+1415{base:03d}0022"
    # Excel in a semicolon locale: BOM, CRLF, scientific notation, a duplicate, empty trailing rows.
    content = (
        "\ufeff".encode()
        + (
            "phone;customer_name\r\n"
            f"{good};Ana\r\n"
            "1.41555501E+10;Sci\r\n"
            f"{twice};Ben\r\n"
            f"{twice};Ben again\r\n"
            ";\r\n;\r\n"
        ).encode()
    )
    validated = _upload(api, "validate", content, "list.csv", line)
    assert validated.status_code == 200 and validated.json()["valid"] is False
    response = _upload(api, "submit", content, "list.csv", line)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["success"] is False and body["error"] == "Invalid recipients"
    assert [(p["row"], p["column"], p["header"]) for p in body["detail"]] == [
        (3, "A", "phone"),
        (5, "A", "phone"),
    ]
    assert "scientific notation" in body["detail"][0]["error"] and body["detail"][1]["duplicate_of_row"] == 4
    assert validated.json()["problems"] == body["detail"]
    dials = sim.get("/_sim/calls/stats").json()["dials_by_number"]
    assert good not in dials and twice not in dials


def test_an_excel_workbook_of_thousands_of_rows_arrives_whole(
    api: httpx.Client, line: dict[str, str]
) -> None:
    base = _exchange()
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["phone_number", "customer_name", "visits"])
    rows = 2_500  # three chunks of BATCH_CHUNK_SIZE
    for i in range(rows):
        sheet.append([f"+1415{base:03d}{i:04d}", f"Customer {i}", i])
    out = io.BytesIO()
    workbook.save(out)
    tomorrow = int((datetime.now(UTC) + timedelta(days=1)).timestamp())  # accepted, not dialled
    response = _upload(api, "submit", out.getvalue(), "customers.xlsx", line, scheduled_time_unix=tomorrow)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["report"]["counts"]["recipients"] == rows
    poll(lambda: api.get(f"/api/v1/batch-calling/{job['id']}").json()["total_calls_scheduled"] == rows)
    page = api.get(f"/api/v1/batch-calling/{job['id']}/calls", params={"page_size": 100}).json()
    assert page["calls"][0]["to_number"] == f"+1415{base:03d}0000"
    assert api.post(f"/api/v1/batch-calling/{job['id']}/cancel").status_code == 200
