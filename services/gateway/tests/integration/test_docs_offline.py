"""The API documentation pages work without internet (README "API documentation"): /docs (Swagger
UI) and /docs/events (AsyncAPI) load every script, style sheet and icon from the gateway itself,
which answers them without an API key, with their content type and a long cache lifetime."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from gateway.bootstrap import Container

pytestmark = pytest.mark.integration

ORIGIN = "http://gateway"
# Where a page names another file: attributes, and the Swagger UI initialiser's `url: '...'`.
REFERENCE = re.compile(r"""(?:\b(?:src|href)=|\burl:\s*)["']([^"']+)["']""")
EXTERNAL = re.compile(r"https?://", re.IGNORECASE)
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".svg": ("image/svg+xml",),
}


@pytest.fixture
async def browser(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no API key, as a browser opening the page."""
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN, timeout=60) as client:
        yield client


def _references(html: str) -> list[str]:
    references = REFERENCE.findall(html)
    assert references, html
    return references


@pytest.mark.parametrize("page", ["/docs", "/docs/events"])
async def test_docs_page_names_no_other_host(browser: httpx.AsyncClient, page: str) -> None:
    response = await browser.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # Not only the attributes: any absolute URL (a CDN, fastapi.tiangolo.com's or asyncapi.com's
    # favicons) is a request that fails offline.
    assert not EXTERNAL.findall(html), sorted(set(re.findall(r"https?://[^\s\"'<>]+", html)))
    for reference in _references(html):
        assert reference.startswith("/"), reference  # same origin, from the root


@pytest.mark.parametrize("page", ["/docs", "/docs/events"])
async def test_every_asset_of_a_docs_page_is_served(browser: httpx.AsyncClient, page: str) -> None:
    html = (await browser.get(page)).text
    assets = [ref for ref in _references(html) if ref.rsplit(".", 1)[-1] in ("js", "css", "svg")]
    # The page's script and style sheet at least (Swagger UI: bundle, css, icon; AsyncAPI: the same).
    assert {ref.rsplit(".", 1)[-1] for ref in assets} >= {"js", "css"}, assets
    for asset in assets:
        response = await browser.get(asset)
        assert response.status_code == 200, (asset, response.text[:200])
        suffix = "." + asset.rsplit(".", 1)[-1]
        assert response.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], (
            asset,
            response.headers["content-type"],
        )
        assert len(response.content) > 100, asset


async def test_docs_still_loads_the_openapi_document(browser: httpx.AsyncClient) -> None:
    html = (await browser.get("/docs")).text
    assert "/openapi.json" in _references(html)
    document = (await browser.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")


async def test_docs_assets_are_cached_long(browser: httpx.AsyncClient) -> None:
    """The asset paths name the package version, so a browser may keep them a year unchecked."""
    for page in ("/docs", "/docs/events"):
        assets = [
            ref for ref in _references((await browser.get(page)).text) if ref.startswith("/docs/static/")
        ]
        assert assets, page
        for asset in assets:
            cache = (await browser.get(asset)).headers.get("cache-control", "")
            assert "max-age=31536000" in cache and "immutable" in cache, (asset, cache)
