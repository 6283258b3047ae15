"""An unexpected exception in any route answers 500 in the contract's format, without a trace."""

from __future__ import annotations

import httpx
import pytest

from gateway.app import create_app
from gateway.bootstrap import Container

from .conftest import API_KEY

pytestmark = pytest.mark.integration


async def test_an_unexpected_exception_is_a_500_in_the_contract_format(container: Container) -> None:
    app = create_app(container)  # lifespan not run: only the request path is exercised

    @app.get("/api/v1/_test/boom")
    async def boom() -> None:
        raise RuntimeError("boom: internal-detail-canary")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/api/v1/_test/boom", headers={"X-API-Key": API_KEY})
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": "Internal server error",
        "detail": "See the server logs for this request",
    }
    assert "internal-detail-canary" not in response.text and "Traceback" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/api/v1/agents", "GET, POST"),
        ("OPTIONS", "/api/v1/agents/a1", "DELETE, GET, PATCH"),
        ("PUT", "/api/v1/tools/t1", "DELETE, GET"),
        ("DELETE", "/api/v1/batch-calling/b1/cancel", "POST"),
        # Literally a documented path, although GET /batch-calling/{job_id} would route it.
        ("OPTIONS", "/api/v1/batch-calling/submit", "POST"),
        ("PUT", "/api/v1/email-templates/sessions", "GET, POST"),
    ],
)
async def test_a_method_the_path_does_not_take_is_a_405_naming_every_one_it_does(
    container: Container, method: str, path: str, allowed: str
) -> None:
    """Found by schemathesis: the 405 had no `Allow` header (RFC 9110 requires one), and Starlette's
    names only the methods of the first route matching the path."""
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.request(method, path, headers={"X-API-Key": API_KEY})
    assert response.status_code == 405
    assert response.json() == {
        "success": False,
        "error": "Method not allowed",
        "detail": f"{path} does not take {method}; it takes {allowed}",
    }
    assert response.headers["allow"] == allowed
