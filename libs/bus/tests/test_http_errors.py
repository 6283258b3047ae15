"""`bus.http_errors`: what any of our apps answers on its own, and what it logs."""

from __future__ import annotations

import httpx
import pytest
import structlog
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import ClientDisconnect

from bus.http_errors import error_message, install_error_format

#: What each GET route raises.
RAISED: dict[str, Exception] = {
    "/boom": RuntimeError("a bug"),
    # What SQLAlchemy raises when the server ended the connection under a transaction.
    "/lost": DBAPIError("COMMIT", {}, Exception("connection is closed"), connection_invalidated=True),
    "/refused": ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    "/pool": PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
    "/rejected": DBAPIError("INSERT", {}, Exception("value too long"), connection_invalidated=False),
}


def _app() -> FastAPI:
    app = FastAPI()
    install_error_format(app, "svc")

    @app.post("/upload")
    async def upload() -> None:
        raise ClientDisconnect()  # what Starlette raises when the client goes while a body is read

    @app.get("/{name}")
    async def raising(name: str) -> None:
        raise RAISED[f"/{name}"]

    return app


async def _call(method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        return await client.request(method, path)


async def test_a_client_that_went_away_is_logged_quietly_not_as_an_unhandled_error() -> None:
    with structlog.testing.capture_logs() as logs:
        response = await _call("POST", "/upload")
    assert response.status_code == 499
    assert [entry["event"] for entry in logs] == ["svc.client_disconnected"]
    assert logs[0]["log_level"] == "info" and logs[0]["path"] == "/upload"


async def test_a_bug_is_a_500_in_the_contracts_format_and_logged_as_an_error() -> None:
    with structlog.testing.capture_logs() as logs:
        response = await _call("GET", "/boom")
    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": "Internal server error",
        "detail": "See the server logs for this request",
    }
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [("svc.unhandled_error", "error")]


@pytest.mark.parametrize("path", ["/lost", "/refused", "/pool"])
async def test_a_database_that_cannot_be_used_is_a_503_to_retry_not_a_500(path: str) -> None:
    """A lost connection (the server restarted, an administrator ended it), a refused one, or no
    pooled connection free in time: the request may simply be retried (was a 500 and an error
    with a traceback in the log)."""
    with structlog.testing.capture_logs() as logs:
        response = await _call("GET", path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "success": False,
        "error": "Service unavailable",
        "detail": "The database could not be reached; retry shortly",
    }
    assert [(entry["event"], entry["log_level"]) for entry in logs] == [
        ("svc.database_unavailable", "warning")
    ]


async def test_a_statement_the_database_refused_is_still_a_500() -> None:
    with structlog.testing.capture_logs() as logs:
        response = await _call("GET", "/rejected")
    assert response.status_code == 500
    assert [entry["event"] for entry in logs] == ["svc.unhandled_error"]


def test_pydantics_prefixes_are_not_part_of_a_message() -> None:
    assert error_message({"msg": "Value error, must be a finite number"}) == "must be a finite number"
    assert error_message({"msg": "Assertion failed, days must differ"}) == "days must differ"
    assert error_message({"msg": "Input should be a valid integer"}) == "Input should be a valid integer"
