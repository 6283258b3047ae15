"""Campaigns from spreadsheets (issue 13, "Spreadsheets in"): CSV bytes written the way Excel and
Google Sheets export them, XLSX written with openpyxl, through the gateway's real request path on
real PostgreSQL. No campaigns service runs here: a submission answers 202 with its report, and what
it queued for the campaigns service is read from the outbox, in the order the relay sends it."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from openpyxl import Workbook
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from contracts.quiet_hours import RULES_FILE
from gateway.app import create_app
from gateway.bootstrap import Container
from gateway.guard import body_cap
from gateway.models import Call, CampaignRecipient, DoNotCall, outbox

from .conftest import API_KEY, seed_agent_and_number

pytestmark = pytest.mark.integration

AGENT = "agent_sheets"
PHONE = "pn_sheets"
FIELDS = {"call_name": "Reminders", "agent_id": AGENT, "phone_number_id": PHONE}
OPT_OUT = "+14155550188"  # on the do-not-call list


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    # The agent's first message needs {{customer_name}}.
    await seed_agent_and_number(
        container,
        agent_id=AGENT,
        name="Sheets",
        first_message="Hello {{customer_name}}",
        phone_number_id=PHONE,
        label="sheets",
    )
    now = datetime.now(UTC)
    async with container.engine.begin() as connection:
        await connection.execute(
            insert(DoNotCall)
            .values(phone_number=OPT_OUT, reason="asked not to be called", added_at_unix=0, last_event_at=now)
            .on_conflict_do_nothing()
        )
        await connection.execute(delete(outbox))
    app = create_app(container)  # lifespan not run: only the request path is exercised
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://gateway", headers={"X-API-Key": API_KEY}, timeout=60
    ) as client:
        yield client


async def _queued(container: Container) -> list[dict[str, Any]]:
    """The commands queued for the campaigns service, in relay order."""
    async with container.engine.connect() as connection:
        rows = await connection.execute(
            select(outbox.c.payload).order_by(outbox.c.next_attempt_at, outbox.c.id)
        )
        return [json.loads(bytes(payload)) for (payload,) in rows.all()]


def _upload(path: str, content: bytes, name: str = "list.csv", **fields: Any) -> dict[str, Any]:
    data = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in (FIELDS | fields).items()}
    return {"files": {"file": (name, content, "application/octet-stream")}, "data": data}


async def _post(
    api: httpx.AsyncClient, path: str, content: bytes, name: str = "list.csv", **fields: Any
) -> httpx.Response:
    return await api.post(f"/api/v1/batch-calling/{path}", **_upload(path, content, name, **fields))


def _numbers(count: int) -> list[str]:
    base = uuid.uuid4().int % 700 + 200
    return [f"+1415{base:03d}{i:04d}" for i in range(count)]


# ---- Excel: BOM, semicolons, CRLF, quoted line breaks, trailing empty rows ------------------------


def _excel_csv(rows: list[list[str]]) -> bytes:
    """What Excel's "CSV UTF-8" writes in a semicolon locale: a BOM, `;`, CRLF, quotes only where
    needed, and the rows of cells once formatted but left empty as `;;;`."""

    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if any(c in value for c in ';"\r\n') else value

    lines = [";".join(cell(v) for v in row) for row in rows]
    return "\ufeff".encode() + "\r\n".join([*lines, ";;;", ";;;", ""]).encode()


async def test_an_excel_semicolon_csv_is_submitted_with_its_variables(
    api: httpx.AsyncClient, container: Container
) -> None:
    ana, ben = _numbers(2)
    content = _excel_csv(
        [
            ["Phone Number", "customer_name", "address", "Name"],
            [ana, "Ana", "1 Main St\r\nApt 4", "Ana Alves"],
            [ben, "Ben; Jr.", 'The "Old" Mill', ""],
        ]
    )
    response = await _post(api, "submit", content)
    assert response.status_code in (200, 202), response.text
    report = response.json()["report"]
    assert report["counts"] | {} == {
        "rows": 2,
        "recipients": 2,
        "problems": 0,
        "converted": 0,
        "duplicates": 0,
        "do_not_call": 0,
        "not_callable": 0,
        "blank_rows": 2,
    }
    assert [(r["row"], r["phone_number"], r["time_zones"]) for r in report["recipients"]] == [
        (2, ana, ["America/Los_Angeles"]),
        (3, ben, ["America/Los_Angeles"]),
    ]
    [submit] = await _queued(container)
    assert submit["type"] == "campaign.submit" and submit["recipient_chunks"] == 1
    assert submit["recipients"] == [
        {
            "recipient_id": "row2",
            "phone_number": ana,
            "name": "Ana Alves",
            "email": None,
            # The header as written; the quoted line break kept inside the value.
            "dynamic_variables": {"customer_name": "Ana", "address": "1 Main St\r\nApt 4"},
        },
        {
            "recipient_id": "row3",
            "phone_number": ben,
            "name": None,
            "email": None,
            "dynamic_variables": {"customer_name": "Ben; Jr.", "address": 'The "Old" Mill'},
        },
    ]
    # The gateway's own list of the campaign's recipients is written with it.
    async with container.engine.connect() as connection:
        staged = await connection.execute(
            select(CampaignRecipient.to_number, CampaignRecipient.status)
            .where(CampaignRecipient.campaign_id == submit["campaign_id"])
            .order_by(CampaignRecipient.position)
        )
        assert staged.all() == [(ana, "scheduled"), (ben, "scheduled")]


async def test_every_problem_names_its_row_and_column_at_once(
    api: httpx.AsyncClient, container: Container
) -> None:
    ana, ben = _numbers(2)
    content = _excel_csv(
        [
            ["phone", "customer_name", "email", ""],
            [ana, "Ana", "ana@example.com", ""],
            ["1.41555501E+10", "Sci", "", ""],  # Excel turned the number into scientific notation
            ["(415) 555-0103", "Nat", "", ""],  # national: strict by default
            [ben, "", "not-an-address", ""],  # no customer_name, bad e-mail
            [ana, "Ana again", "", "stray"],  # duplicate of row 2, a value without a header
        ]
    )
    for path in ("submit", "validate"):
        response = await _post(api, path, content)
        body = response.json()
        problems = body["detail"] if path == "submit" else body["problems"]
        assert [(p["row"], p.get("column")) for p in problems] == [
            (3, "A"),
            (4, "A"),
            (5, "C"),  # the e-mail
            (5, None),  # the missing variable: no column holds it
            (6, "D"),
            (6, "A"),
        ], problems
        assert "scientific notation (1.41555501E+10)" in problems[0]["error"]
        assert problems[0]["header"] == "phone" and problems[0]["value"] == "1.41555501E+10"
        assert "E.164" in problems[1]["error"] and "default_region" in problems[1]["error"]
        assert problems[2]["header"] == "email" and problems[2]["value"] == "not-an-address"
        assert problems[3]["missing_dynamic_variables"] == ["customer_name"]
        assert problems[4]["error"] == "A value in a column without a header"
        assert problems[5]["duplicate_of_row"] == 2 and "row 2" in problems[5]["error"]
        if path == "submit":
            assert response.status_code == 422
            assert body["success"] is False and body["error"] == "Invalid recipients"
        else:
            assert response.status_code == 200
            assert body["valid"] is False and body["counts"]["problems"] == 6
            assert body["counts"]["recipients"] == 1  # only row 2 would be called
    assert await _queued(container) == []  # nothing was created


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("name,customer_name\n", "No phone number column"),
        ("phone,mobile,customer_name\n", "More than one phone number column"),
        ("phone,customer_name,first_message\n", "override column"),
        ("phone,customer_name,Customer_Name,customer_name\n", "The same column twice"),
        ("phone,customer_name,no\x00te\n", "NUL character"),
    ],
)
async def test_header_problems_are_refused_before_any_row(
    api: httpx.AsyncClient, container: Container, header: str, problem: str
) -> None:
    response = await _post(api, "submit", (header + "+14155550101,Ana,x,y\n").encode())
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "Invalid spreadsheet header"
    assert problem in body["detail"][0]["error"] and body["detail"][0]["row"] == 1
    assert await _queued(container) == []


async def test_a_cells_nul_and_a_repeated_id_name_their_column(api: httpx.AsyncClient) -> None:
    ana, ben = _numbers(2)
    content = f"phone,customer_name,id\n{ana},An\x00a,A\n{ben},Ben,A\n".encode()
    response = await _post(api, "validate", content)
    problems = response.json()["problems"]
    assert [(p["row"], p.get("column"), p.get("header")) for p in problems] == [
        (2, "B", "customer_name"),
        (3, "C", "id"),
    ], problems
    assert "NUL" in problems[0]["error"] and "duplicate recipient id" in problems[1]["error"]


async def test_header_aliases_are_read_whatever_their_case(api: httpx.AsyncClient) -> None:
    for header in ("phone_number", "Phone", "NUMBER", "to_number", "Mobile", "phone number", "Phone-Number"):
        [number] = _numbers(1)
        response = await _post(api, "validate", f"{header},customer_name\n{number},Ana\n".encode())
        assert response.json()["valid"] is True, (header, response.text)


# ---- Google Sheets and XLSX; national numbers with default_region ---------------------------------


async def test_national_numbers_become_e164_with_a_default_region_and_show_what_they_became(
    api: httpx.AsyncClient, container: Container
) -> None:
    # Google Sheets: no BOM, commas, LF line ends, every cell quoted only when needed.
    content = (
        b'phone,customer_name\n(415) 555-0103,Ana\n"+1 (415) 555-0104",Ben\n4155550105,Cy\n+14155550106,Di\n'
    )
    strict = await _post(api, "validate", content)
    assert [p["row"] for p in strict.json()["problems"]] == [2, 3, 4]
    response = await _post(api, "submit", content, default_region="US")
    assert response.status_code in (200, 202), response.text
    report = response.json()["report"]
    assert report["counts"]["converted"] == 3
    assert [(r["row"], r.get("given"), r["phone_number"]) for r in report["recipients"]] == [
        (2, "(415) 555-0103", "+14155550103"),
        (3, "+1 (415) 555-0104", "+14155550104"),
        (4, "4155550105", "+14155550105"),
        (5, None, "+14155550106"),
    ]
    [submit] = await _queued(container)
    assert [r["phone_number"] for r in submit["recipients"]] == [f"+1415555010{i}" for i in (3, 4, 5, 6)]


@pytest.mark.parametrize("region", ["us", "Us", " US "])
async def test_a_default_region_in_other_case_is_read_as_written_in_capitals(
    api: httpx.AsyncClient, region: str
) -> None:
    response = await _post(
        api, "validate", b"phone,customer_name\n(415) 555-0105,Cy\n", default_region=region
    )
    assert response.status_code == 200, response.text
    assert response.json()["recipients"][0]["phone_number"] == "+14155550105"


async def test_an_unknown_default_region_is_a_validation_error(api: httpx.AsyncClient) -> None:
    response = await _post(api, "validate", b"phone,customer_name\n4155550105,Cy\n", default_region="USA")
    assert response.status_code == 422
    assert response.json()["error"] == "Validation error" and "default_region" in response.json()["detail"]


def _xlsx(rows: list[list[Any]]) -> bytes:
    """An Excel workbook as openpyxl writes it: numbers stay numbers, dates are dates."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def test_an_xlsx_workbook_with_numeric_phone_cells_and_typed_values(
    api: httpx.AsyncClient, container: Container
) -> None:
    content = _xlsx(
        [
            ["Mobile", "customer_name", "visits", "vip", "due", "email"],
            [4155550111, "Ana", 3, True, date(2026, 2, 1), "ana@example.com"],
            ["(415) 555-0112", "Ben", 2.5, False, None, None],
            [None, None, None, None, None, None],  # a blank row in the middle: skipped, counted
            [14155550113, "Cy", None, None, None, None],
        ]
    )
    response = await _post(api, "submit", content, name="list.xlsx", default_region="US")
    assert response.status_code in (200, 202), response.text
    report = response.json()["report"]
    assert report["counts"]["recipients"] == 3 and report["counts"]["blank_rows"] == 1
    assert [(r["row"], r["given"], r["phone_number"]) for r in report["recipients"]] == [
        (2, "4155550111", "+14155550111"),
        (3, "(415) 555-0112", "+14155550112"),
        (5, "14155550113", "+14155550113"),
    ]
    [submit] = await _queued(container)
    ana, ben, cy = submit["recipients"]
    assert ana["email"] == "ana@example.com"
    assert ana["dynamic_variables"] == {
        "customer_name": "Ana",
        "visits": 3,
        "vip": True,
        "due": "2026-02-01T00:00:00",
    }
    assert ben["dynamic_variables"] == {"customer_name": "Ben", "visits": 2.5, "vip": False}
    assert cy["recipient_id"] == "row5"


async def test_a_legacy_xls_and_a_non_utf8_csv_are_refused_with_a_way_out(api: httpx.AsyncClient) -> None:
    xls = await _post(api, "submit", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, name="old.xls")
    assert xls.status_code == 415 and ".xlsx" in xls.json()["detail"][0]["error"]
    latin1 = await _post(api, "submit", "phone,customer_name\n+14155550101,Jos\xe9\n".encode("latin-1"))
    assert latin1.status_code == 422 and latin1.json()["error"] == "The file is not UTF-8 text"
    broken = await _post(api, "submit", b"PK\x03\x04 not really a zip", name="list.xlsx")
    assert broken.status_code == 422 and broken.json()["error"] == "Unreadable XLSX"
    empty = await _post(api, "submit", b"")
    assert empty.status_code == 422 and empty.json()["error"] == "Empty file"
    header_only = await _post(api, "submit", b"phone,customer_name\r\n")
    assert header_only.status_code == 422 and header_only.json()["error"] == "No recipients"
    assert header_only.json()["detail"] == "The file has a header row but no data rows"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"phone,customer_name\r\n", "The file has a header row but no data rows"),
        (
            b"phone,customer_name\r\n,\r\n\r\n",
            "The file has a header row but no data rows (2 blank rows skipped)",
        ),
    ],
)
async def test_validate_says_why_a_sheet_without_rows_is_invalid(
    api: httpx.AsyncClient, content: bytes, why: str
) -> None:
    answer = await _post(api, "validate", content)
    assert answer.status_code == 200
    body = answer.json()
    assert body["valid"] is False
    assert body["problems"] == [{"error": why}]


@pytest.mark.parametrize("path", ["validate", "submit"])
@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b'phone,customer_name\r\n"+14155550101,Ann\r\n+14155550102,Bob\r\n', 2),  # a data row
        (b'phone,"customer_name\r\n+14155550101,Ann\r\n', 1),  # the header: no rows left at all
        (b'phone,customer_name\r\n+14155550101,"Ann\r\nLee"\r\n+14155550102,"Bob\r\n', 4),  # after a
        # quoted line break, which is fine
    ],
)
async def test_an_unterminated_quote_is_malformed_csv_at_its_line(
    api: httpx.AsyncClient, path: str, content: bytes, line: int
) -> None:
    answer = await _post(api, path, content)
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "Unreadable CSV"
    (problem,) = body["detail"]
    assert problem["line"] == line and f"Malformed CSV at line {line}" in problem["error"]


@pytest.mark.parametrize("path", ["validate", "submit"])
@pytest.mark.parametrize(
    "content",
    [
        b"phone,customer_name\r+14155550101,Ann\r+14155550102,Bob\r",  # classic Mac Excel
        b"phone,customer_name\r+14155550101,Ann\n+14155550102,Bob",  # mixed, no final break
        b'phone;customer_name\r+14155550101;"Ann\rLee"\r+14155550102;Bob\r',  # a quoted CR
    ],
)
async def test_lines_ending_in_a_lone_cr_are_read_as_lines(
    api: httpx.AsyncClient, path: str, content: bytes
) -> None:
    answer = await _post(api, path, content)
    assert answer.status_code in (200, 202), answer.text  # submit: no campaigns service here
    body = answer.json()
    report = body if path == "validate" else body["report"]
    assert report["counts"]["recipients"] == 2 and report["counts"]["problems"] == 0


@pytest.mark.parametrize("path", ["validate", "submit"])
@pytest.mark.parametrize(
    ("content", "row"),
    [
        (b"phone_number," + b"b" * 140_000 + b"\n+14155550101,x\n", 1),  # in the header
        (b'"phone_number\n,name' + b"x" * 140_000 + b'"\n', 1),  # a quoted header cell
        (b"phone_number,name\n+14155550101," + b"x" * 140_000 + b"\n", 2),  # in a row
    ],
)
async def test_a_cell_longer_than_csv_reads_is_a_problem_of_its_row(
    api: httpx.AsyncClient, path: str, content: bytes, row: int
) -> None:
    answer = await _post(api, path, content)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["success"] is False and body["error"] == "Unreadable CSV"
    assert body["detail"] == [{"row": row, "error": "A cell is longer than 131,072 characters"}]


async def test_a_retried_upload_with_its_idempotency_key_replays_the_first_answer(
    api: httpx.AsyncClient,
) -> None:
    # httpx, like curl and browsers, draws a new multipart boundary for every request.
    content = "phone,customer_name\n" + "".join(f"{n},C\n" for n in _numbers(3))
    key = {"Idempotency-Key": uuid.uuid4().hex}
    url = "/api/v1/batch-calling/submit"
    first = await api.post(url, headers=key, **_upload("submit", content.encode()))
    again = await api.post(url, headers=key, **_upload("submit", content.encode()))
    assert first.status_code in (200, 202), first.text
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    other = await api.post(url, headers=key, **_upload("submit", content.encode() + b"+14155550199,D\n"))
    assert other.status_code == 422 and "different request" in other.json()["error"]


# ---- do-not-call, zones, estimate --------------------------------------------------------------


async def test_validate_reports_do_not_call_zones_and_an_estimate_and_creates_nothing(
    api: httpx.AsyncClient, container: Container
) -> None:
    async with container.engine.begin() as connection:
        await connection.execute(delete(Call).where(Call.agent_id == AGENT))
    content = (
        "phone,customer_name\n"
        f"{OPT_OUT},Opted Out\n"
        "+61892001234,Perth\n"  # libphonenumber: Adelaide and Perth
        "+442079460123,London\n"
        "+14155550121,SF\n"
    ).encode()
    window = {"start": "09:00", "end": "17:00", "days": [0, 1, 2, 3, 4]}
    response = await _post(
        api, "validate", content, timezone="Australia/Perth", calling_window=window, concurrency_limit=1
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True and body["counts"]["do_not_call"] == 1
    assert body["do_not_call"] == [{"row": 2, "phone_number": OPT_OUT, "reason": "asked not to be called"}]
    zones = {r["row"]: r["time_zones"] for r in body["recipients"]}
    assert zones == {
        2: ["America/Los_Angeles"],
        3: ["Australia/Perth"],  # the campaign's zone is one of the number's
        4: ["Europe/London"],
        5: ["America/Los_Angeles"],
    }
    assert body["recipients"][0]["do_not_call"] is True
    estimate = body["estimate"]
    assert estimate["recipients"] == 3  # the opted-out number is skipped
    assert estimate["concurrency"] == 1 and estimate["not_callable"] == 0
    # This agent has no finished call: the estimate falls back to every agent's calls, and to the
    # stated assumption when there is none at all (the read model is shared with other suites).
    async with container.engine.begin() as connection:
        mean, finished = (
            await connection.execute(
                select(func.avg(Call.duration_seconds), func.count(Call.duration_seconds)).where(
                    Call.duration_seconds > 0, Call.deleted.is_(False)
                )
            )
        ).one()
    if finished == 0:
        call_s = container.settings.batch_assumed_call_s
        assert estimate["average_call_source"].startswith("assumed")
    else:
        call_s = round(float(mean), 1)
        assert (
            estimate["average_call_source"] == f"the average of all agents' {finished} finished calls so far"
        )
    assert estimate["average_call_seconds"] == call_s
    # Three calls, one at a time, in windows of three zones: at least three calls long, at most
    # the week it takes every zone's weekday window to come round.
    assert 3 * call_s <= estimate["duration_seconds"] <= 8 * 86_400
    assert estimate["finishes_at_unix"] - estimate["starts_at_unix"] == estimate["duration_seconds"]
    assert await _queued(container) == []

    # Once calls have finished, their average replaces the assumption.
    async with container.engine.begin() as connection:
        for seconds in (100, 200):
            await connection.execute(
                insert(Call).values(
                    conversation_id=f"conv_{uuid.uuid4().hex}",
                    provider="twilio",
                    agent_id=AGENT,
                    phone_number_id=PHONE,
                    to_number="+14155550199",
                    status="completed",
                    duration_seconds=seconds,
                    placed_at_unix=0,
                    last_event_at=datetime.now(UTC),
                )
            )
    again = (await _post(api, "validate", content, concurrency_limit=3)).json()["estimate"]
    assert again["average_call_seconds"] == 150 and "2 finished calls" in again["average_call_source"]
    assert again["duration_seconds"] == 150  # three calls at once, no window (and no quiet hours here)


async def test_submit_reports_do_not_call_matches_the_campaign_will_skip(api: httpx.AsyncClient) -> None:
    response = await _post(
        api, "submit", f"phone,customer_name\n{OPT_OUT},Opted Out\n+14155550122,Ok\n".encode()
    )
    assert response.status_code in (200, 202), response.text
    report = response.json()["report"]
    assert report["counts"]["do_not_call"] == 1 and report["counts"]["recipients"] == 2
    assert report["do_not_call"] == [{"row": 2, "phone_number": OPT_OUT, "reason": "asked not to be called"}]


@pytest.fixture
def quiet_hours(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped quiet hours, instead of this suite's none."""
    monkeypatch.setattr(container.settings, "quiet_hours_file", RULES_FILE)


@pytest.mark.usefixtures("quiet_hours")
async def test_recipients_the_quiet_hours_never_allow_in_the_window_are_flagged_not_callable(
    api: httpx.AsyncClient,
) -> None:
    # 20:00-23:00: California's quiet hours end at 21:00, Florida's at 20:00 (never callable).
    content = b"phone,customer_name\n+14155550141,SF\n+13055550142,Miami\n"
    window = {"start": "20:00", "end": "23:00"}
    for route in ("validate", "submit"):
        response = await _post(api, route, content, calling_window=window)
        assert response.status_code in (200, 202), response.text
        report = response.json() if route == "validate" else response.json()["report"]
        assert report["counts"]["not_callable"] == 1 and report["counts"]["recipients"] == 2
        [line] = report["not_callable"]
        assert line["row"] == 3 and line["phone_number"] == "+13055550142"
        assert line["error"] == (
            "Not callable: The platform's quiet hours (country US: 08:00-21:00; US state FL: 08:00-20:00) "
            "never allow a call within the campaign's calling window (20:00-23:00) in America/New_York"
        )
        assert report["recipients"][1]["not_callable"] == line["error"].removeprefix("Not callable: ")
        assert "not_callable" not in report["recipients"][0]
        if route == "validate":
            assert report["estimate"]["not_callable"] == 1 and report["estimate"]["recipients"] == 2


# ---- many rows: chunks, in order; the JSON path shares it ---------------------------------------


async def test_a_long_file_goes_out_in_chunks_behind_its_submit(
    api: httpx.AsyncClient, container: Container
) -> None:
    numbers = _numbers(2_500)
    content = ("phone,customer_name\n" + "".join(f"{n},N{i}\n" for i, n in enumerate(numbers))).encode()
    response = await _post(api, "submit", content)
    assert response.status_code in (200, 202), response.text
    assert len(response.json()["report"]["recipients"]) == container.settings.batch_report_rows
    queued = await _queued(container)
    assert [m["type"] for m in queued] == [
        "campaign.submit",
        "campaign.add_recipients",
        "campaign.add_recipients",
    ]
    submit, *followers = queued
    assert submit["recipient_chunks"] == 3
    assert [f["chunk_index"] for f in followers] == [1, 2]
    assert all(f["causation_id"] == submit["message_id"] for f in followers)
    sent = [r["phone_number"] for m in queued for r in m["recipients"]]
    assert sent == numbers


async def test_json_recipients_keep_their_index_based_problems(api: httpx.AsyncClient) -> None:
    body = FIELDS | {
        "recipients": [
            {"phone_number": "+14155550131", "dynamic_variables": {"customer_name": "A"}},
            {"phone_number": "(415) 555-0132", "dynamic_variables": {"customer_name": "B"}},
            {"phone_number": "+14155550131", "dynamic_variables": {"customer_name": "C"}},
            {"phone_number": "+14155550133", "email": "nope", "dynamic_variables": {"customer_name": "D"}},
        ]
    }
    response = await api.post("/api/v1/batch-calling/submit", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(p["index"], p.get("duplicate_of"), p.get("field")) for p in detail] == [
        (1, None, None),
        (2, 0, None),
        (3, None, "email"),
    ]
    converted = await api.post("/api/v1/batch-calling/validate", json=body | {"default_region": "US"})
    lines = converted.json()["recipients"]
    assert lines[1] == {
        "index": 1,
        "phone_number": "+14155550132",
        "given": "(415) 555-0132",
        "time_zones": ["America/Los_Angeles"],
    }


@pytest.mark.parametrize("region", [None, "US"])
async def test_a_json_number_a_spreadsheet_turned_into_scientific_notation_says_so(
    api: httpx.AsyncClient, region: str | None
) -> None:
    body = (
        FIELDS
        | {
            "recipients": [
                {"phone_number": "1.41555501E+10", "dynamic_variables": {"customer_name": "A"}},
                {"phone_number": "4,15555E+9", "dynamic_variables": {"customer_name": "B"}},
            ]
        }
        | ({"default_region": region} if region else {})
    )
    response = await api.post("/api/v1/batch-calling/validate", json=body)
    problems = response.json()["problems"]
    assert [(p["index"], p.get("phone_number")) for p in problems] == [
        (0, "1.41555501E+10"),
        (1, "4,15555E+9"),
    ], problems
    assert all("scientific notation" in p["error"] for p in problems)


@pytest.mark.parametrize("given", ["14155550101.0", "14155550101,00", "+14155550101.0"])
async def test_a_number_exported_as_a_decimal_says_so(api: httpx.AsyncClient, given: str) -> None:
    content = f'phone,customer_name\n"{given}",Ana\n'.encode()
    problems = (await _post(api, "validate", content, default_region="US")).json()["problems"]
    assert [(p["row"], p["column"], p["value"]) for p in problems] == [(2, "A", given)]
    assert "written as a decimal" in problems[0]["error"]


def test_a_spreadsheet_upload_has_its_own_body_cap(container: Container) -> None:
    settings = container.settings
    path = "/api/v1/batch-calling/submit"
    assert body_cap(settings, path, "application/json") == (
        settings.batch_max_body_bytes,
        "BATCH_MAX_BODY_BYTES",
    )
    cap, setting = body_cap(settings, path, "multipart/form-data; boundary=x")
    assert setting == "BATCH_FILE_MAX_BYTES" and cap == settings.batch_file_max_bytes
    assert cap > 100_000 * 80  # a 100,000-row file of numbers, names and a few variables
    assert (
        body_cap(settings, "/api/v1/batch-calling/validate", "multipart/form-data")[1]
        == "BATCH_FILE_MAX_BYTES"
    )


@pytest.mark.parametrize("path", ["validate", "submit"])
@pytest.mark.parametrize("kind", ["csv", "xlsx"])
async def test_a_name_or_id_longer_than_is_stored_is_a_problem_of_its_cell(
    api: httpx.AsyncClient, path: str, kind: str
) -> None:
    # The JSON route's schema holds them to 500 and 200 characters; a file's cells were stored
    # unchecked and the database refused them (a 500 at submit, after validate said valid).
    ana, ben, cy = _numbers(3)
    rows = [
        ["phone", "name", "id", "customer_name"],
        [ana, "n" * 501, "a", "Ana"],
        [ben, "Ben", "i" * 201, "Ben"],
        [cy, "n" * 500, "i" * 200, "Cy"],  # at the limits: fine
    ]
    if kind == "csv":
        content, name = "\n".join(",".join(row) for row in rows).encode(), "list.csv"
    else:
        content, name = _xlsx(rows), "list.xlsx"
    response = await _post(api, path, content, name=name)
    assert response.status_code == (200 if path == "validate" else 422), response.text
    problems = response.json()["problems"] if path == "validate" else response.json()["detail"]
    assert [(p["row"], p["column"], p["header"], p["error"]) for p in problems] == [
        (2, "B", "name", "At most 500 characters (501 given)"),
        (3, "C", "id", "At most 200 characters (201 given)"),
    ]


def _damaged(content: bytes, damage: Any) -> bytes:
    """The workbook with its first sheet's XML passed through `damage` (a valid zip still)."""
    source, out = zipfile.ZipFile(io.BytesIO(content)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            target.writestr(info, damage(data) if info.filename == "xl/worksheets/sheet1.xml" else data)
    return out.getvalue()


@pytest.mark.parametrize("path", ["validate", "submit"])
@pytest.mark.parametrize(
    "damage",
    [
        lambda xml: xml[: len(xml) * 3 // 4],  # cut short, as an interrupted download leaves it
        lambda xml: xml.replace(b"<v>14155502990</v>", b"<v>1&#0;</v>"),  # a character XML forbids
    ],
    ids=["cut", "forbidden-character"],
)
async def test_damage_far_down_an_xlsx_sheet_is_unreadable_xlsx_at_its_row(
    api: httpx.AsyncClient, path: str, damage: Any
) -> None:
    rows: list[list[Any]] = [["phone", "customer_name"]]
    rows += [[14155500000 + i, f"C{i}"] for i in range(2, 3002)]  # row r holds +1415550000r
    content = _damaged(_xlsx(rows), damage)
    response = await _post(api, path, content, name="list.xlsx")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "Unreadable XLSX" and body["success"] is False
    [problem] = body["detail"]
    assert 2000 < problem["row"] <= 3001 and "damaged after row" in problem["error"], problem


@pytest.mark.parametrize(
    ("bad_row", "rows", "encoding"),
    [
        (2, 3, "utf-8"),  # near the top: was reported as row 1 (the decoder's block starts there)
        (3001, 5000, "utf-8"),  # far down: was the row its 64 KiB block started at (2646)
        (3, 4, "utf-8-sig"),  # after a BOM
        (1, 3, "utf-8"),  # in the header
    ],
)
async def test_a_byte_that_is_not_utf8_is_reported_at_its_row_and_column(
    api: httpx.AsyncClient, bad_row: int, rows: int, encoding: str
) -> None:
    lines = [b"phone,customer_name,city"] + [
        f"+1415555{r:04d},Customer {r},Springfield".encode() for r in range(2, rows + 1)
    ]
    lines[bad_row - 1] += b" \xe1"  # Latin-1's a-acute, in column C
    content = ("\ufeff".encode() if encoding == "utf-8-sig" else b"") + b"\r\n".join(lines) + b"\r\n"
    response = await _post(api, "validate", content)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "The file is not UTF-8 text"
    [problem] = response.json()["detail"]
    assert (problem["row"], problem["column"]) == (bad_row, "C"), problem


@pytest.mark.parametrize("path", ["validate", "submit"])
async def test_a_recipients_field_beside_the_file_is_refused_not_ignored(
    api: httpx.AsyncClient, path: str
) -> None:
    [ana, ben] = _numbers(2)
    response = await _post(
        api,
        path,
        f"phone,customer_name\n{ana},Ana\n".encode(),
        recipients=json.dumps([{"phone_number": ben}]),
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("body.recipients: the recipients come from the file")


# ---- blank rows before the header (fresh-user trial) ----------------------------------------------


def _xlsx_at(rows: dict[int, list[Any]]) -> bytes:
    """A workbook whose rows sit at the given sheet row numbers, the rows between them empty."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for number, cells in rows.items():
        for column, value in enumerate(cells, start=1):
            sheet.cell(number, column, value)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "name", "blank", "rows"),
    [
        (b"\n\nphone,customer_name\n{a},Ana\n\n{b},Ben\n", "list.csv", 3, (4, 6)),  # empty lines
        (
            b"\xef\xbb\xbf;;\r\n;;\r\nphone;customer_name\r\n{a};Ana\r\n;;\r\n{b};Ben\r\n",
            "list.csv",
            3,
            (4, 6),
        ),
        (b',,\n"",""\nphone,customer_name\n{a},Ana\n,\n{b},Ben\n', "list.csv", 3, (4, 6)),  # Google Sheets
        (b"\t\t\nphone\tcustomer_name\n\n{a}\tAna\n{b}\tBen\n", "list.csv", 2, (4, 5)),  # tabs
        (None, "list.xlsx", 2, (3, 5)),  # empty sheet rows 1 and 4; the header on row 2
    ],
)
async def test_blank_rows_before_the_header_are_skipped_and_counted_keeping_row_numbers(
    api: httpx.AsyncClient, content: bytes | None, name: str, blank: int, rows: tuple[int, int]
) -> None:
    ana, ben = _numbers(2)
    if content is None:
        content = _xlsx_at({2: ["phone", "customer_name"], 3: [ana, "Ana"], 5: [ben, "Ben"]})
    else:
        content = content.replace(b"{a}", ana.encode()).replace(b"{b}", ben.encode())
    answer = await _post(api, "validate", content, name)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["valid"] is True and body["counts"]["recipients"] == 2
    assert body["counts"]["blank_rows"] == blank
    assert [(r["row"], r["phone_number"]) for r in body["recipients"]] == [(rows[0], ana), (rows[1], ben)]


async def test_a_problem_below_a_late_header_names_the_sheets_row(api: httpx.AsyncClient) -> None:
    content = b"\n;\nphone;customer_name\n+1415555;Ana\n"
    problems = (await _post(api, "validate", content)).json()["problems"]
    assert [(p["row"], p["column"]) for p in problems] == [(4, "A")], problems
    header = await _post(api, "validate", b"\n\nname,customer_name\n+14155550101,Ana\n")
    assert header.status_code == 422 and header.json()["detail"][0]["row"] == 3, header.text


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"", "list.csv"),
        (b"\n\r\n\n", "list.csv"),
        (b";;;\r\n;;;\r\n", "list.csv"),
        (b"\xef\xbb\xbf,,\n", "list.csv"),
        (None, "list.xlsx"),
    ],
)
async def test_a_file_of_only_blank_rows_is_an_empty_file(
    api: httpx.AsyncClient, content: bytes | None, name: str
) -> None:
    if content is None:
        content = _xlsx_at({3: [None, ""]})
    answer = await _post(api, "validate", content, name)
    assert answer.status_code == 422, answer.text
    assert answer.json()["success"] is False and answer.json()["error"] == "Empty file", answer.text


# ---- two columns mapped to one role (fresh-user trial) --------------------------------------------


@pytest.mark.parametrize(
    ("content", "columns", "said"),
    [
        (
            b"Tel,Who\n+14155553201,Ann\n",
            {"Tel": "phone_number", "Who": "phone_number"},
            "More than one phone number column: 'Tel' (column A, mapped), 'Who' (column B, mapped)",
        ),
        (
            b"Tel,Who,Also\n+14155553201,Ann,B\n",
            {"Tel": "phone_number", "Who": "name", "Also": "name"},
            "Two columns are read as name: 'Who' (column B, mapped) and 'Also' (column C, mapped)",
        ),
        (
            b"Name,Tel,Who\nAnn,+14155553201,B\n",
            {"Tel": "phone_number", "Who": "name"},
            "Two columns are read as name: 'Name' (column A, by its header) and 'Who' (column C, mapped)",
        ),
        (
            b"phone,Mail,email\n+14155553201,a@example.com,b@example.com\n",
            {"Mail": "email"},
            "Two columns are read as email: 'Mail' (column B, mapped) and 'email' (column C, by its header)",
        ),
    ],
)
async def test_two_columns_read_as_one_role_are_both_named_with_their_letters(
    api: httpx.AsyncClient, content: bytes, columns: dict[str, str], said: str
) -> None:
    answer = await _post(api, "validate", content, columns=columns)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "Invalid spreadsheet header"
    assert [p["error"].split(";")[0] for p in body["detail"]] == [said], body


# ---- form fields a client got wrong (fresh-user trial) ---------------------------------------------


def _multipart(parts: list[tuple[str, bytes]], content: bytes) -> tuple[bytes, str]:
    """A multipart body written by hand: fields in this order (repeated ones too, bytes as given)
    and the file last."""
    boundary = "b0undary"
    out = b""
    for name, value in parts:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    out += (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="list.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return out, f"multipart/form-data; boundary={boundary}"


_FIELD_PARTS = [(k, v.encode()) for k, v in FIELDS.items()]


@pytest.mark.parametrize("path", ["validate", "submit"])
@pytest.mark.parametrize(
    ("extra", "field", "said"),
    [
        ([("unknown_field", b"1")], "unknown_field", "Extra inputs are not permitted"),
        ([("retry_cuont", b"2")], "retry_cuont", "Extra inputs are not permitted"),
        ([("call_name", b"dup")], "call_name", "given more than once"),
        ([("columns", b"{}"), ("columns", b'{"phone": "phone_number"}')], "columns", "given more than once"),
        ([("call_name", b"")], "call_name", "given more than once"),  # an empty one too
        ([("customer_name", b"ok\xc3")], "customer_name", "not UTF-8"),
    ],
)
async def test_a_form_field_unknown_repeated_or_not_utf8_is_a_422_naming_it(
    api: httpx.AsyncClient,
    container: Container,
    path: str,
    extra: list[tuple[str, bytes]],
    field: str,
    said: str,
) -> None:
    body, content_type = _multipart(
        [*_FIELD_PARTS, *extra], f"phone,customer_name\n{_numbers(1)[0]},Ana\n".encode()
    )
    response = await api.post(
        f"/api/v1/batch-calling/{path}", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"] == "Validation error"
    assert f"body.{field}: " in answer["detail"] and said in answer["detail"], answer
    assert await _queued(container) == []


@pytest.mark.parametrize("path", ["validate", "submit"])
async def test_a_call_name_not_utf8_is_refused_not_read_as_latin1(api: httpx.AsyncClient, path: str) -> None:
    parts = [("call_name", b"ok\xc3"), *[(k, v) for k, v in _FIELD_PARTS if k != "call_name"]]
    body, content_type = _multipart(parts, f"phone,customer_name\n{_numbers(1)[0]},Ana\n".encode())
    response = await api.post(
        f"/api/v1/batch-calling/{path}", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("body.call_name: is not UTF-8 text"), response.text
    # Valid UTF-8 beyond ASCII is read as written.
    parts[0] = ("call_name", "Relance été".encode())
    body, content_type = _multipart(parts, f"phone,customer_name\n{_numbers(1)[0]},Ana\n".encode())
    response = await api.post(
        f"/api/v1/batch-calling/{path}", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code in (200, 202), response.text


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("analysis_rules", "notjson", "array"),
        ("analysis_rules", '{"field": "outcome"}', "array"),
        ("phone_number_ids", "pn_x", "array"),
        ("phone_number_ids", '{"a": 1}', "array"),
        ("calling_window", "09:00-17:00", "object"),
        ("calling_window", '["09:00", "17:00"]', "object"),
        ("retry_delays", "[60]", "object"),
        ("ecommerce_credentials", "nope", "object"),
        ("phone_number_daily_caps", "5", "object"),
        ("columns", '["phone"]', "object"),
    ],
)
async def test_a_json_form_field_names_the_json_type_it_must_hold(
    api: httpx.AsyncClient, field: str, value: str, kind: str
) -> None:
    response = await _post(
        api, "validate", f"phone,customer_name\n{_numbers(1)[0]},Ana\n".encode(), **{field: value}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"body.{field}: must be a JSON {kind}", response.text


@pytest.mark.parametrize("path", ["validate", "submit"])
async def test_an_unknown_member_of_a_json_submission_is_refused(api: httpx.AsyncClient, path: str) -> None:
    body = FIELDS | {
        "bogus": 1,
        "recipients": [{"phone_number": _numbers(1)[0], "dynamic_variables": {"customer_name": "A"}}],
    }
    response = await api.post(f"/api/v1/batch-calling/{path}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "body.bogus: Extra inputs are not permitted", response.text


@pytest.mark.parametrize("path", ["validate", "submit"])
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", "text/csv"]
)
async def test_a_body_neither_json_nor_multipart_is_a_415(
    api: httpx.AsyncClient, container: Container, path: str, content_type: str | None
) -> None:
    body = json.dumps(
        FIELDS
        | {"recipients": [{"phone_number": _numbers(1)[0], "dynamic_variables": {"customer_name": "A"}}]}
    )
    response = await api.post(
        f"/api/v1/batch-calling/{path}", content=body.encode(), headers={"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"] == "Unsupported media type"
    assert "application/json" in answer["detail"] and "multipart/form-data" in answer["detail"]
    assert await _queued(container) == []
    # The JSON body with its media type (parameters and all) is read.
    ok = await api.post(
        f"/api/v1/batch-calling/{path}",
        content=body.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code in (200, 202), ok.text
    if path == "validate":  # and, as on every FastAPI route, a body without a Content-Type
        bare = await api.post(f"/api/v1/batch-calling/{path}", content=body.encode())
        assert "content-type" not in bare.request.headers
        assert bare.status_code == 200, bare.text
