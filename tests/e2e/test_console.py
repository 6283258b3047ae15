"""The operator console (issue 14) in a real browser: Playwright driving Debian's Chromium over the
whole stack with the simulator. An operator signs in (a wrong key is refused), uploads a CSV with
good and bad rows, sees the problems, maps the phone column, leaves the bad rows out and submits;
watches the campaign reach 100 % without reloading; opens a recipient; exports the CSV (the API's,
byte for byte); pauses, resumes and cancels; adds and removes a do-not-call number. Screenshots of
the main pages go to docs/ (the README shows one). Waits are Playwright's auto-waiting `expect`."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devinfra.stack import Stack
from tests.e2e.chromium import chromium_path, launch_args
from tests.e2e.conftest import API_KEY, poll

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect
DOCS = Path(__file__).parents[2] / "docs"
# Wide deadlines: they cost nothing when the page is ready, and CI machines are loaded.
expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path, why = chromium_path()
    if path is None:
        pytest.skip(why)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=launch_args())
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    context = browser.new_context(base_url=stack.url("gateway"), viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of pause, cancel, remove
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def line(api: httpx.Client) -> dict[str, str]:
    agent = api.post("/api/v1/agents", json={"name": "Console Agent"}).json()["agent_id"]
    number = api.post(
        "/api/v1/phone-numbers",
        json={"phone_number": "+14155550193", "label": "console", "sid": "AC" + "9" * 32, "token": "t"},
    ).json()["phone_number_id"]
    return {"agent_id": agent, "phone_number_id": number}


@pytest.fixture(scope="module")
def shared() -> dict[str, Any]:
    """What one step leaves for the next (the tests run in file order, as one operator's session)."""
    return {}


def _number(base: int, i: int, outcome_digit: int) -> str:
    """The simulator's outcome is the last digit: 0-4 completed, 5 busy, 6 no answer."""
    return f"+1415{base:03d}{i:03d}{outcome_digit}"


def _shot(page: Any, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / name), full_page=True)


def test_a_wrong_key_is_refused_and_the_right_one_signs_in(page: Any) -> None:
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.get_by_label("API key").fill("sb_live_0123456789abcdef_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That API key is not valid. Check it and try again.")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    _shot(page, "console-sign-in.png")

    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "sb_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert API_KEY not in cookie["value"]


def test_a_post_without_the_csrf_token_is_refused(page: Any, stack: Stack) -> None:
    # The browser's own cookie, but not the page's token: what a forged cross-site form would send.
    cookie = next(c for c in page.context.cookies() if c["name"] == "sb_console")
    with httpx.Client(base_url=stack.url("gateway"), cookies={"sb_console": cookie["value"]}) as client:
        refused = client.post("/console/do-not-call", data={"phone_number": "+14155550100"})
        assert refused.status_code == 403
        assert "expired" in refused.text
        assert client.get("/console/campaigns").status_code == 200  # the cookie itself is good


def test_a_spreadsheet_with_problems_is_explained_mapped_and_submitted(
    page: Any, api: httpx.Client, line: dict[str, str], shared: dict[str, Any]
) -> None:
    base = uuid.uuid4().int % 700 + 200
    good = [_number(base, 1, 1), _number(base, 2, 2), _number(base, 3, 5), _number(base, 4, 6)]
    blocked = _number(base, 5, 3)
    assert (
        api.post("/api/v1/do-not-call", json={"phone_number": blocked, "reason": "asked"}).status_code == 200
    )
    csv = (
        "Tel,Name,Plan\n"
        f"{good[0]},Ana,gold\n"
        f"{good[1]},Ben,silver\n"
        f"{good[2]},Cy,gold\n"
        f"{good[3]},Di,bronze\n"
        "not a number,Ed,gold\n"  # row 6
        f"{good[0]},Ana again,gold\n"  # row 7: a duplicate
        f"{blocked},Flo,gold\n"  # row 8: on the do-not-call list
    ).encode()
    page.get_by_role("link", name="New campaign").first.click()
    expect(page.get_by_role("heading", name="New campaign")).to_be_visible()
    page.get_by_label("Agent").select_option(line["agent_id"])
    page.get_by_label("Call from").first.select_option(line["phone_number_id"])
    page.set_input_files("#file", files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": csv}])

    # "Tel" is no phone header the sheet reader knows: said next to the file, columns shown to map.
    expect(page.locator("#error-file")).to_contain_text("choose below what each column holds")
    expect(page.locator("#preview .problems")).to_contain_text("No phone number column")
    expect(page.locator("#preview table.preview tbody tr")).to_have_count(5)
    page.get_by_label("What column Tel holds").select_option("phone_number")

    preview = page.locator("#preview")
    expect(preview.locator("[data-valid]")).to_contain_text("2 problems")
    expect(preview.locator(".problems")).to_contain_text("Row 6, column A (Tel)")
    expect(preview.locator(".problems")).to_contain_text("duplicate phone number: the same number as row 2")
    expect(preview).to_contain_text(f"Row 8: {blocked} (asked)")
    expect(preview).to_contain_text("Estimated duration")
    expect(page.locator("#error-file")).to_be_empty()

    # Submitting as it is refuses, in words, and says how to go on.
    name = f"Console {base}"
    page.get_by_label("Campaign name").fill(name)
    page.get_by_role("button", name="Start campaign").click()
    expect(page.locator("#error-file")).to_contain_text("Leave out the rows with problems")
    # Said beside the button too: the file's slot is a screen above it.
    expect(page.locator("#error-start")).to_contain_text("Not started. Some rows have problems")
    _shot(page, "console-new-campaign.png")
    page.get_by_label("Leave out the rows with problems").check()
    page.get_by_role("button", name="Start campaign").click()
    expect(page).to_have_url(re.compile(r"/console/campaigns/batch_[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    job = api.get(f"/api/v1/batch-calling/{job_id}").json()
    assert job["name"] == name and job["total_calls_scheduled"] == 5
    rows = api.get(f"/api/v1/batch-calling/{job_id}/calls").json()["calls"]
    assert [r["to_number"] for r in rows] == [*good, blocked]
    assert rows[0]["name"] == "Ana" and rows[0]["dynamic_variables"] == {"Plan": "gold"}
    shared.update(job_id=job_id, good=good, blocked=blocked)


def test_the_campaign_reaches_100_percent_without_reloading(page: Any, shared: dict[str, Any]) -> None:
    page.evaluate("window.__notReloaded = true")
    summary = page.locator("#summary")
    expect(summary.locator("[data-percent]")).to_have_text("100 %")
    expect(summary.locator(".card-head .status")).to_have_text("completed")
    expect(summary.locator('[data-outcome="completed"]')).to_have_text("2")
    expect(summary.locator('[data-outcome="busy"]')).to_have_text("1")
    expect(summary.locator('[data-outcome="no_answer"]')).to_have_text("1")
    expect(summary.locator('[data-outcome="skipped"]')).to_have_text("1")
    expect(summary.locator('[data-outcome="cancelled"]')).to_have_text("0")
    expect(summary.locator("[data-progress]")).to_have_attribute("data-status", "completed")
    expect(page.locator("#recipients tbody tr").first).to_contain_text("completed")
    assert page.evaluate("window.__notReloaded") is True
    _shot(page, "console-campaign.png")

    # The table's search and status filter.
    page.get_by_label("Status", exact=True).select_option("busy")
    expect(page.locator("#recipients tbody tr")).to_have_count(1)
    expect(page.locator("#recipients tbody tr")).to_contain_text(shared["good"][2])
    page.get_by_label("Status", exact=True).select_option("")
    expect(page.locator("#recipients tbody tr")).to_have_count(5)
    page.get_by_label("Search").fill("Di")
    expect(page.locator("#recipients tbody tr")).to_have_count(1)
    expect(page.locator("#recipients tbody tr")).to_contain_text(shared["good"][3])
    page.get_by_label("Search").fill("")
    expect(page.locator("#recipients tbody tr")).to_have_count(5)


def test_a_recipient_shows_attempts_summary_and_transcript(page: Any, shared: dict[str, Any]) -> None:
    page.get_by_role("link", name=shared["good"][0]).click()
    expect(page.get_by_role("heading", name="Ana")).to_be_visible()
    expect(page.get_by_role("heading", name="Attempts")).to_be_visible()
    expect(page.locator("table tbody tr").first).to_contain_text("completed")

    # The post-call analysis and transcript come with ElevenLabs' webhook, after the call ends.
    def arrived() -> bool:
        page.reload()
        return bool(
            page.locator("ol.transcript li").count() > 0 and page.locator("[data-summary]").count() > 0
        )

    poll(arrived, timeout=60, interval=0.5)
    expect(page.locator("dl.facts").last).to_contain_text("Plan")
    page.go_back()


def test_the_csv_export_is_the_apis(page: Any, api: httpx.Client, shared: dict[str, Any]) -> None:
    job_id = shared["job_id"]
    page.goto(f"/console/campaigns/{job_id}")
    url = f"/api/v1/batch-calling/{job_id}/calls.csv"

    def same_as_the_api() -> bool:
        # A late post-call analysis may change the export between two reads: compare a quiet one.
        before = api.get(url).content
        with page.expect_download() as download:
            page.get_by_role("link", name="Export CSV").click()
        assert download.value.suggested_filename == f"{job_id}.csv"
        exported = Path(download.value.path()).read_bytes()
        return bool(exported == before == api.get(url).content)

    poll(same_as_the_api, timeout=60, interval=0.5)
    assert len(api.get(url).text.splitlines()) == 1 + 5


def test_pause_resume_and_cancel_with_confirmation(
    page: Any, api: httpx.Client, line: dict[str, str]
) -> None:
    base = uuid.uuid4().int % 700 + 200
    later = int(time.time()) + 3600  # it waits for its start: nothing races the buttons
    job = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": f"Later {base}",
            **line,
            "recipients": [{"phone_number": _number(base, i, 1)} for i in range(3)],
            "scheduled_time_unix": later,
        },
    ).json()
    page.goto(f"/console/campaigns/{job['id']}")
    status = page.locator("#summary .card-head .status")
    page.get_by_role("button", name="Pause").click()
    expect(status).to_have_text("paused")
    assert api.get(f"/api/v1/batch-calling/{job['id']}").json()["status"] == "paused"
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    assert api.get(f"/api/v1/batch-calling/{job['id']}").json()["status"] in {"pending", "running"}
    page.get_by_role("button", name="Cancel campaign").click()
    expect(status).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    assert api.get(f"/api/v1/batch-calling/{job['id']}").json()["status"] == "cancelled"
    # Never called because of the cancel: "Cancelled", not "Skipped"; the full bar is no green success.
    summary = page.locator("#summary")
    expect(summary.locator('[data-outcome="cancelled"]')).to_have_text("3")
    expect(summary.locator('[data-outcome="skipped"]')).to_have_text("0")
    expect(summary.locator("[data-percent]")).to_have_text("100 %")
    bar = summary.locator("[data-progress]")
    expect(bar).to_have_attribute("data-status", "cancelled")
    done_colour = bar.locator(".done").evaluate("el => getComputedStyle(el).backgroundColor")
    assert done_colour != "rgb(26, 127, 55)", done_colour  # console.css --ok


def test_a_campaign_that_reached_nobody_does_not_look_like_a_success(
    page: Any, api: httpx.Client, line: dict[str, str]
) -> None:
    base = uuid.uuid4().int % 700 + 200
    job = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": f"Unreached {base}",
            **line,
            "recipients": [{"phone_number": _number(base, i, 8)} for i in range(2)],  # 8: failed
        },
    ).json()
    page.goto(f"/console/campaigns/{job['id']}")
    summary = page.locator("#summary")
    expect(summary.locator(".card-head .status")).to_have_text("completed, nobody reached")
    expect(summary.locator(".card-head .status")).to_have_attribute("data-status", "completed-unreached")
    expect(summary).to_contain_text("No recipient was reached: 2 failed")
    expect(summary.locator("[data-progress]")).to_have_attribute("data-status", "completed-unreached")
    detail = api.get(f"/api/v1/batch-calling/{job['id']}").json()
    assert detail["status"] == "completed" and detail["status_reason"].startswith("No recipient was reached")
    page.goto("/console/campaigns")
    card = page.locator(f'[data-campaign="{job["id"]}"]')
    expect(card.locator(".status")).to_have_text("completed, nobody reached")


def test_one_problem_is_one_problem_and_the_icon_is_served(
    page: Any, api: httpx.Client, line: dict[str, str]
) -> None:
    base = uuid.uuid4().int % 700 + 200
    csv = f"phone_number,name\n{_number(base, 1, 1)},Ana\nnot a number,Ben\n".encode()
    page.goto("/console/campaigns-new")
    page.get_by_label("Agent").select_option(line["agent_id"])
    page.get_by_label("Call from").first.select_option(line["phone_number_id"])
    page.set_input_files("#file", files=[{"name": "one.csv", "mimeType": "text/csv", "buffer": csv}])
    check = page.locator("#preview [data-valid]")
    expect(check).to_have_text(re.compile(r"^\s*1 person to call from 2 rows; 1 problem\.\s*$"))
    icon = page.locator('link[rel="icon"]').get_attribute("href")
    assert icon == "/console/static/favicon.svg"
    for path in (icon, "/favicon.ico"):
        answer = api.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("image/svg+xml")


def test_the_campaign_list_follows_changes_live(page: Any, api: httpx.Client, line: dict[str, str]) -> None:
    page.goto("/console/campaigns")
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    page.evaluate("window.__notReloaded = true")
    base = uuid.uuid4().int % 700 + 200
    job = api.post(
        "/api/v1/batch-calling/submit",
        json={
            "call_name": f"Watched {base}",
            **line,
            "recipients": [{"phone_number": _number(base, 0, 1)}],
            "scheduled_time_unix": int(time.time()) + 3600,
        },
    ).json()
    card = page.locator(f'[data-campaign="{job["id"]}"]')
    expect(card.locator(".status")).to_have_text("pending")  # a new campaign appears
    assert api.post(f"/api/v1/batch-calling/{job['id']}/cancel").status_code == 200
    expect(card.locator(".status")).to_have_text("cancelled")  # and follows its changes
    assert page.evaluate("window.__notReloaded") is True
    _shot(page, "console-campaigns.png")
    page.get_by_label("Status").select_option("cancelled")
    expect(page).to_have_url(re.compile(r"status=cancelled"))
    expect(page.locator(".card .status").first).to_have_text("cancelled")


def test_a_do_not_call_number_is_added_and_removed(page: Any, api: httpx.Client) -> None:
    number = _number(uuid.uuid4().int % 700 + 200, 9, 9)
    page.get_by_role("link", name="Do not call").click()
    page.get_by_label("Phone number").fill("555 0100")
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#dnc .notice")).to_have_text(
        "That is not a phone number in international format: write it as +14155550123."
    )
    page.get_by_label("Phone number").fill(number)
    page.get_by_label("Reason (optional)").fill("asked us to stop")
    page.get_by_role("button", name="Add").click()
    expect(page.locator(f'tr[data-number="{number}"]')).to_contain_text("asked us to stop")
    listed = api.get("/api/v1/do-not-call", params={"page_size": 100}).json()["numbers"]
    assert number in {n["phone_number"] for n in listed}
    page.get_by_label("Find a number").fill(number)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#dnc tbody tr")).to_have_count(1)
    page.get_by_role("button", name=f"Remove {number}").click()
    expect(page.locator(f'tr[data-number="{number}"]')).to_have_count(0)
    expect(page.locator("#dnc .notice")).to_contain_text("removed")
    assert api.get("/api/v1/do-not-call", params={"page_size": 100}).status_code == 200
    assert number not in {
        n["phone_number"] for n in api.get("/api/v1/do-not-call", params={"page_size": 100}).json()["numbers"]
    }


def test_setup_lists_and_a_phone_width_page(page: Any, line: dict[str, str]) -> None:
    page.get_by_role("link", name="Setup").click()
    expect(page.get_by_role("heading", name="Agents")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Console Agent")
    own_phone = _number(uuid.uuid4().int % 700 + 200, 7, 1)
    page.get_by_label("Number to call (e.g. your own phone)").fill(own_phone)
    page.get_by_role("button", name="Call now").click()
    expect(page.locator("#test-call-result")).to_contain_text(f"Calling {own_phone}")
    # Readable on a phone: nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/console/campaigns")
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, "console-campaigns-phone.png")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_sign_out_ends_the_session(page: Any) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.goto("/console/campaigns")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
