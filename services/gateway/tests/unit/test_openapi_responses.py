"""The OpenAPI document describes every route's answers: its success body and the error format."""

from __future__ import annotations

from typing import Any

import pytest

from bus.secrets import new_key
from gateway.app import create_app
from gateway.bootstrap import bootstrap
from gateway.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Nothing is connected: bootstrap only builds clients, and openapi() starts no lifespan.
    settings = Settings.model_validate(
        {
            "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
            "SWITCHBOARD_API_KEYS": "k",
            "SWITCHBOARD_SECRET_KEY": new_key(),
        }
    )
    return create_app(bootstrap(settings)).openapi()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def _schema(response: dict[str, Any]) -> dict[str, Any] | None:
    schema: dict[str, Any] | None = response.get("content", {}).get("application/json", {}).get("schema")
    return schema


def test_every_success_answer_has_a_described_body(document: dict[str, Any]) -> None:
    undescribed = []
    for method, path, operation in _operations(document):
        success = operation["responses"].get("200") or operation["responses"].get("201", {})
        schema = _schema(success)
        streamed = set(success.get("content", {})) - {"application/json"}  # text/csv, text/event-stream
        # FastAPI's fallback for a route without a model is an empty schema ({}) or a bare object.
        if not streamed and (not schema or "$ref" not in schema):
            undescribed.append(f"{method} {path}")
    assert undescribed == []


def test_every_api_error_answer_is_the_contract_error_format(document: dict[str, Any]) -> None:
    error_ref = "#/components/schemas/ErrorBody"
    wrong = []
    for method, path, operation in _operations(document):
        if not path.startswith("/api/v1/"):
            continue
        for status in ("400", "401", "404", "422", "4XX", "5XX"):
            if _schema(operation["responses"].get(status, {})) != {"$ref": error_ref}:
                wrong.append(f"{method} {path} {status}")
    assert wrong == []
    # FastAPI's own 422 shape ({"detail": [...]}) is not what the gateway answers.
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"success", "error", "detail"}


#: Writes without a command (answered at once, so never a pending operation).
CHECKS_ONLY = {"/api/v1/batch-calling/validate", "/api/v1/api-keys", "/api/v1/api-keys/{key_id}"}


def test_writes_document_their_pending_answer(document: dict[str, Any]) -> None:
    writes = [
        (method, path, operation)
        for method, path, operation in _operations(document)
        if method in ("POST", "PATCH", "DELETE") and path not in CHECKS_ONLY
    ]
    assert writes
    missing = [
        f"{method} {path}"
        for method, path, operation in writes
        if _schema(operation["responses"].get("202", {})) != {"$ref": "#/components/schemas/Pending"}
    ]
    assert missing == []
