"""Who gets into the console (issue 14): sign-in with an API key, the session cookie, CSRF, the key's
scope and its revocation, on real PostgreSQL (the browser flows are tests/e2e/test_console.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.bootstrap import Container

from .conftest import API_KEY, seed_agent_and_number

pytestmark = pytest.mark.integration

ADMIN = {"X-API-Key": API_KEY}


@pytest.fixture
async def browser(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, as a browser does (same origin: http://gateway)."""
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def _sign_in(browser: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await browser.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, form.text
    return await browser.post("/console/sign-in", data={"api_key": key, "csrf_token": token[1]})


def _csrf(page: httpx.Response) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found, page.text
    return found[1]


async def _key(browser: httpx.AsyncClient, scope: str) -> dict[str, Any]:
    created = await browser.post("/api/v1/api-keys", json={"name": "console", "scope": scope}, headers=ADMIN)
    assert created.status_code == 201, created.text
    key: dict[str, Any] = created.json()
    return key


async def test_without_a_session_pages_lead_to_sign_in_and_streams_are_refused(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/console/campaigns")
    assert page.status_code == 303 and page.headers["location"] == "/console/sign-in"
    assert (await browser.get("/console/events")).status_code == 401
    browser.cookies.set("sb_console", "sb2.x.not-a-session")
    assert (await browser.get("/console/campaigns")).status_code == 303


async def test_a_wrong_key_is_refused_in_plain_words(browser: httpx.AsyncClient) -> None:
    refused = await _sign_in(browser, "not-a-key")
    assert refused.status_code == 401
    assert "That API key is not valid" in refused.text
    assert "sb_console" not in browser.cookies


async def test_the_session_cookie_is_sealed_http_only_and_strict(browser: httpx.AsyncClient) -> None:
    signed_in = await _sign_in(browser, API_KEY)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/campaigns"
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("sb_console="))
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/console"} <= attributes
    assert API_KEY not in cookie
    assert (await browser.get("/console/campaigns")).status_code == 200


async def test_a_change_without_the_pages_csrf_token_is_refused(browser: httpx.AsyncClient) -> None:
    await _sign_in(browser, API_KEY)
    page = await browser.get("/console/do-not-call")
    refused = await browser.post("/console/do-not-call", data={"phone_number": "+14155550100"})
    assert refused.status_code == 403 and "expired" in refused.text
    wrong = await browser.post(
        "/console/do-not-call", data={"phone_number": "+14155550100"}, headers={"X-CSRF-Token": "guess"}
    )
    assert wrong.status_code == 403
    right = await browser.post(
        "/console/do-not-call", data={"phone_number": "not a number"}, headers={"X-CSRF-Token": _csrf(page)}
    )
    assert right.status_code == 200
    assert "not a phone number in international format" in right.text


async def test_a_read_key_looks_but_cannot_change_and_a_revoked_key_is_signed_out(
    browser: httpx.AsyncClient,
) -> None:
    key = await _key(browser, "read")
    assert (await _sign_in(browser, key["api_key"])).status_code == 303
    page = await browser.get("/console/campaigns")
    assert page.status_code == 200 and "New campaign</a>" not in page.text.split("</nav>", 1)[1]
    refused = await browser.post("/console/campaigns/batch_x/pause", headers={"X-CSRF-Token": _csrf(page)})
    assert refused.status_code == 403 and "may only read" in refused.text

    revoked = await browser.delete(f"/api/v1/api-keys/{key['key_id']}", headers=ADMIN)
    assert revoked.status_code == 200, revoked.text
    after = await browser.get("/console/campaigns")
    assert after.status_code == 303 and after.headers["location"] == "/console/sign-in"


async def test_sign_out_clears_the_session(browser: httpx.AsyncClient) -> None:
    await _sign_in(browser, API_KEY)
    page = await browser.get("/console/campaigns")
    out = await browser.post("/console/sign-out", data={"csrf_token": _csrf(page)})
    assert out.status_code == 303 and out.headers["location"] == "/console/sign-in"
    assert (await browser.get("/console/campaigns")).status_code == 303


async def test_an_unknown_campaign_is_a_page_not_the_api_error_format(browser: httpx.AsyncClient) -> None:
    await _sign_in(browser, API_KEY)
    missing = await browser.get("/console/campaigns/batch_nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Batch job not found" in missing.text


async def test_behind_an_https_proxy_the_cookies_are_secure(browser: httpx.AsyncClient) -> None:
    form = await browser.get("/console/sign-in", headers={"X-Forwarded-Proto": "https"})
    cookie = next(c for c in form.headers.get_list("set-cookie") if c.startswith("sb_console_signin="))
    assert "secure" in {a.strip().lower() for a in cookie.split(";")[1:]}
    plain = await browser.get("/console/sign-in")
    cookie = next(c for c in plain.headers.get_list("set-cookie") if c.startswith("sb_console_signin="))
    assert "secure" not in {a.strip().lower() for a in cookie.split(";")[1:]}


def _field_error(page: httpx.Response, field: str) -> str:
    found = re.search(rf'<p id="error-{field}"[^>]*>([^<]*)</p>', page.text)
    assert found, page.text
    return found[1]


async def test_new_campaign_mistakes_are_said_in_plain_words_next_to_their_fields(
    browser: httpx.AsyncClient, container: Container
) -> None:
    await seed_agent_and_number(
        container,
        agent_id="agent_console",
        name="Console",
        first_message="Hi",
        phone_number_id="pn_console",
        label="console",
    )
    await _sign_in(browser, API_KEY)
    token = _csrf(await browser.get("/console/campaigns-new"))
    sheet = {"file": ("people.csv", b"phone,Plan\n+14155550161,gold\n", "text/csv")}
    fields = {"agent_id": "agent_console", "phone_number_id": "pn_console"}

    async def check(**changes: str) -> httpx.Response:
        return await browser.post(
            "/console/campaigns-new/validate",
            files=sheet,
            data=fields | changes,
            headers={"X-CSRF-Token": token, "HX-Request": "true"},
        )

    good = await check()
    assert good.status_code == 200 and 'data-valid="true"' in good.text
    assert _field_error(good, "timezone") == "" and _field_error(good, "file") == ""
    assert "Not a time zone we know" in _field_error(await check(timezone="Mars/Olympus"), "timezone")
    assert (
        _field_error(await check(retry_count="9"), "retry_count")
        == "Retries must be a whole number from 0 to 5."
    )
    assert "two times" in _field_error(await check(window_start="09:00"), "window")
    assert (
        _field_error(await check(agent_id="agent_nope"), "agent_id")
        == "Choose the agent that makes the calls."
    )
    no_file = await browser.post(
        "/console/campaigns-new/validate", data=fields, headers={"X-CSRF-Token": token, "HX-Request": "true"}
    )
    assert _field_error(no_file, "file") == "Choose a CSV or XLSX file of recipients."
    nameless = await browser.post(
        "/console/campaigns-new/submit",
        files=sheet,
        data=fields,
        headers={"X-CSRF-Token": token, "HX-Request": "true"},
    )
    assert _field_error(nameless, "call_name") == "Give the campaign a name."


async def test_odd_search_text_is_a_search_not_an_error(
    browser: httpx.AsyncClient, container: Container
) -> None:
    await _sign_in(browser, API_KEY)
    for text in ("\x00", "%_\\", "'; drop table campaigns; --"):
        found = await browser.get("/console/campaigns/batch_nope/recipients", params={"search": text})
        assert found.status_code == 404, found.text  # the campaign is unknown: a page, never a 500
        listed = await browser.get("/console/do-not-call", params={"search": text})
        assert listed.status_code == 200, listed.text
        rows, _ = await container.service.results_page("batch_nope", None, 10, None, None, search=text)
        assert rows == []


async def test_a_nul_in_a_campaign_id_is_not_found(browser: httpx.AsyncClient) -> None:
    await _sign_in(browser, API_KEY)
    for path in ("/console/campaigns/a%00b", "/console/campaigns/a%00b/summary"):
        assert (await browser.get(path)).status_code == 404
    # The API's routes read through the same repository.
    api = await browser.get("/api/v1/batch-calling/a%00b", headers=ADMIN)
    assert api.status_code == 404 and api.json()["success"] is False
