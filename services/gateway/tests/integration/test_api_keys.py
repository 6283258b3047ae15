"""API keys stored hashed, scoped, revocable without a restart (issue 12, "Tokens and keys", API keys).

Real PostgreSQL; each gateway replica is an app over its own engine (lifespan off: the request path
only). Writes answer 202 at once: no service answers their commands here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from gateway.app import create_app
from gateway.bootstrap import Container, bootstrap
from gateway.models import ApiKey, IdempotencyKey
from gateway.settings import Settings

from .conftest import API_KEY

pytestmark = pytest.mark.integration

ADMIN = {"X-API-Key": API_KEY}  # SWITCHBOARD_API_KEYS: admin, as before stored keys existed
WEBHOOK = "/api/v1/admin/webhooks/post-call"
AGENT = {"name": "Scoped", "first_message": "Hello!"}


def _client(container: Container) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(container) as client:
        yield client


async def _create(api: httpx.AsyncClient, scope: str, name: str = "test key") -> dict[str, Any]:
    response = await api.post("/api/v1/api-keys", json={"name": name, "scope": scope}, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _as(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['api_key']}"}


def _forbidden(response: httpx.Response, needed: str, has: str) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"success", "error", "detail"}
    assert body["success"] is False and body["error"] == "Insufficient scope"
    assert f"needs an API key with the {needed} scope; this key has the {has} scope" in body["detail"]


async def test_an_admin_creates_a_key_that_is_shown_once_and_stored_hashed(
    api: httpx.AsyncClient, container: Container
) -> None:
    created = await _create(api, "read", "dashboard")
    key_id, secret = created["key_id"], created["api_key"]
    assert secret.startswith(f"sb_live_{key_id}_") and len(secret) == len("sb_live_") + 16 + 1 + 43
    assert created["prefix"] == f"sb_live_{key_id}"
    assert created | {"api_key": None, "created_at": None} == {
        "key_id": key_id,
        "prefix": f"sb_live_{key_id}",
        "name": "dashboard",
        "scope": "read",
        "rate_limit_per_s": None,
        "rate_limit_burst": None,
        "created_at": None,
        "last_used_at": None,
        "revoked_at": None,
        "api_key": None,
    }
    async with container.engine.connect() as connection:
        row = (await connection.execute(select(ApiKey.__table__).where(ApiKey.key_id == key_id))).one()
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    # The 43-character secret part (it may itself hold "_", so cut by length, not by "_").
    secret_part = secret[len(f"sb_live_{key_id}_") :]
    assert not any(secret in str(value) or secret_part in str(value) for value in row)

    listed = (await api.get("/api/v1/api-keys", headers=ADMIN)).json()["api_keys"]
    mine = [k for k in listed if k["key_id"] == key_id]
    assert len(mine) == 1 and "api_key" not in mine[0] and mine[0]["name"] == "dashboard"
    one = await api.get(f"/api/v1/api-keys/{key_id}", headers=ADMIN)
    assert one.status_code == 200 and "api_key" not in one.json() and secret not in one.text


async def test_a_read_key_reads_and_gets_403_on_every_write(api: httpx.AsyncClient) -> None:
    read = await _create(api, "read")
    assert (await api.get("/api/v1/agents", headers=_as(read))).status_code == 200
    assert (await api.get("/api/v1/calls", headers=_as(read))).status_code == 200
    _forbidden(await api.post("/api/v1/agents", json=AGENT, headers=_as(read)), "operator", "read")
    _forbidden(
        await api.patch("/api/v1/agents/agent_1", json={"name": "x"}, headers=_as(read)), "operator", "read"
    )
    _forbidden(await api.delete("/api/v1/tools/tool_1", headers=_as(read)), "operator", "read")
    _forbidden(await api.post("/api/v1/batch-calling/job_1/cancel", headers=_as(read)), "operator", "read")
    _forbidden(
        await api.post(WEBHOOK, json={"public_url": "https://evil.example/api/v1"}, headers=_as(read)),
        "admin",
        "read",
    )
    _forbidden(await api.get("/api/v1/api-keys", headers=_as(read)), "admin", "read")


async def test_an_operator_key_writes_but_gets_403_on_the_webhook_route_and_keys(
    api: httpx.AsyncClient, container: Container
) -> None:
    operator = await _create(api, "operator")
    created = await api.post("/api/v1/agents", json=AGENT, headers=_as(operator))
    assert created.status_code == 202, created.text  # accepted: no provisioning answers here
    _forbidden(
        await api.post(WEBHOOK, json={"public_url": "https://evil.example/api/v1"}, headers=_as(operator)),
        "admin",
        "operator",
    )
    for response in (
        await api.get("/api/v1/api-keys", headers=_as(operator)),
        await api.post(
            "/api/v1/api-keys", json={"name": "escalate", "scope": "admin"}, headers=_as(operator)
        ),
        await api.delete(f"/api/v1/api-keys/{operator['key_id']}", headers=_as(operator)),
    ):
        _forbidden(response, "admin", "operator")


async def test_an_admin_key_may_repoint_the_post_call_webhook(api: httpx.AsyncClient) -> None:
    admin = await _create(api, "admin")
    for headers in (_as(admin), ADMIN):
        response = await api.post(
            WEBHOOK, json={"public_url": "https://ours.example/api/v1"}, headers=headers
        )
        assert response.status_code == 202, response.text  # queued for tool-webhooks
    assert (await api.get("/api/v1/api-keys", headers=_as(admin))).status_code == 200


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "sb_live_0123456789abcdef_" + "A" * 43,  # shaped like a key, never issued
        "not-a-key",
    ],
)
async def test_unknown_keys_get_401(api: httpx.AsyncClient, presented: str) -> None:
    response = await api.get("/api/v1/agents", headers={"X-API-Key": presented})
    assert response.status_code == 401
    assert response.json() == {
        "success": False,
        "error": "Authentication failed",
        "detail": "Missing or invalid API key",
    }


async def test_a_key_id_with_a_wrong_secret_gets_401(api: httpx.AsyncClient) -> None:
    key = await _create(api, "admin")
    forged = key["api_key"][:-1] + ("A" if key["api_key"][-1] != "A" else "B")
    assert (await api.get("/api/v1/agents", headers={"X-API-Key": forged})).status_code == 401
    assert (await api.get("/api/v1/agents", headers={"X-API-Key": key["api_key"]})).status_code == 200


async def test_revocation_holds_at_once_on_every_replica(container: Container, settings: Settings) -> None:
    other = bootstrap(settings)  # a second replica: own engine, same database
    try:
        async with _client(container) as a, _client(other) as b:
            key = await _create(a, "operator")
            assert (await a.get("/api/v1/agents", headers=_as(key))).status_code == 200
            assert (await b.get("/api/v1/agents", headers=_as(key))).status_code == 200

            revoked = await a.delete(f"/api/v1/api-keys/{key['key_id']}", headers=ADMIN)
            assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None

            # The very next request, on either replica: no cache to wait out.
            assert (await b.get("/api/v1/agents", headers=_as(key))).status_code == 401
            assert (await a.post("/api/v1/agents", json=AGENT, headers=_as(key))).status_code == 401
            listed = (await b.get("/api/v1/api-keys", headers=ADMIN)).json()["api_keys"]
            assert [k["revoked_at"] for k in listed if k["key_id"] == key["key_id"]] == [
                revoked.json()["revoked_at"]
            ]
            again = await b.delete(f"/api/v1/api-keys/{key['key_id']}", headers=ADMIN)
            assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    finally:
        await other.http.aclose()
        await other.engine.dispose()


async def test_last_used_at_is_written_on_first_use_then_at_most_once_a_minute(
    api: httpx.AsyncClient, container: Container
) -> None:
    key = await _create(api, "read")

    async def last_used() -> Any:
        return (await api.get(f"/api/v1/api-keys/{key['key_id']}", headers=ADMIN)).json()["last_used_at"]

    assert await last_used() is None
    await api.get("/api/v1/agents", headers=_as(key))
    first = await last_used()
    assert first is not None
    await api.get("/api/v1/agents", headers=_as(key))
    assert await last_used() == first  # within the minute: not written again

    async with container.engine.begin() as connection:  # the last use, two minutes ago
        await connection.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key["key_id"])
            .values(last_used_at=ApiKey.last_used_at - timedelta(minutes=2))
        )
    await api.get("/api/v1/agents", headers=_as(key))
    assert await last_used() > first


async def test_an_idempotency_key_never_replays_or_stores_a_new_api_key(
    api: httpx.AsyncClient, container: Container
) -> None:
    headers = {**ADMIN, "Idempotency-Key": "create-key-once"}
    first = await api.post("/api/v1/api-keys", json={"name": "ci", "scope": "read"}, headers=headers)
    second = await api.post("/api/v1/api-keys", json={"name": "ci", "scope": "read"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["api_key"] != second.json()["api_key"]
    async with container.engine.connect() as connection:
        stored = (await connection.execute(select(IdempotencyKey.response))).scalars().all()
    assert not any(first.json()["api_key"].encode() in (body or b"") for body in stored)


async def test_a_stored_key_gets_idempotent_replays_like_an_env_key(api: httpx.AsyncClient) -> None:
    operator = await _create(api, "operator")
    headers = {**_as(operator), "Idempotency-Key": "agent-once"}
    first = await api.post("/api/v1/agents", json=AGENT, headers=headers)
    replay = await api.post("/api/v1/agents", json=AGENT, headers=headers)
    assert first.status_code == replay.status_code == 202
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["operation_id"] == first.json()["operation_id"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"name": "x", "scope": "root"}, "scope"),
        ({"name": "   ", "scope": "read"}, "name"),
        ({"scope": "read"}, "name"),
        ({"name": "x"}, "scope"),
        ({"name": "x" * 201, "scope": "read"}, "name"),
    ],
)
async def test_a_bad_key_request_is_a_422(api: httpx.AsyncClient, body: dict[str, Any], problem: str) -> None:
    response = await api.post("/api/v1/api-keys", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert (
        answer["success"] is False and answer["error"] == "Validation error" and problem in answer["detail"]
    )


async def test_an_unknown_key_id_is_a_404(api: httpx.AsyncClient) -> None:
    for response in (
        await api.get("/api/v1/api-keys/0123456789abcdef", headers=ADMIN),
        await api.delete("/api/v1/api-keys/0123456789abcdef", headers=ADMIN),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "success": False,
            "error": "API key not found",
            "detail": "0123456789abcdef",
        }


async def test_a_stored_key_gets_503_in_the_error_format_while_the_database_is_down(
    settings: Settings,
) -> None:
    """No key can be checked: the guard answers 503 in the error format, not a bare 500."""
    down = bootstrap(
        Settings.model_validate(
            {
                **settings.model_dump(by_alias=True),
                "DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:9/none",
            }
        )
    )
    try:
        async with _client(down) as api:
            stored = await api.get(
                "/api/v1/agents", headers={"X-API-Key": "sb_live_0123456789abcdef_" + "A" * 43}
            )
            assert stored.status_code == 503
            assert stored.json() == {
                "success": False,
                "error": "Service unavailable",
                "detail": "API keys cannot be checked; retry shortly",
            }
    finally:
        await down.http.aclose()
        await down.engine.dispose()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        # the gateway's environment: its settings refuse to load without a usable key
        "SWITCHBOARD_SECRET_KEY": settings.switchboard_secret_key.get_secret_value(),
    }
    env.pop("SWITCHBOARD_API_KEYS", None)
    return subprocess.run(
        [sys.executable, "-m", "gateway.keys", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_the_cli_creates_lists_and_revokes_keys_without_a_restart(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    created = _cli(settings, "create", "--name", "first admin", "--scope", "admin")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("sb_live_") and "\n" not in key
    assert key not in created.stderr  # the key on stdout alone
    key_id = key.split("_")[2]

    # The running gateway takes it at once: it reads keys per request.
    assert (await api.get("/api/v1/api-keys", headers={"X-API-Key": key})).status_code == 200
    listed = _cli(settings, "list")
    assert listed.returncode == 0 and f"sb_live_{key_id}\tadmin\tfirst admin" in listed.stdout
    assert key not in listed.stdout

    revoked = _cli(settings, "revoke", key_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert (await api.get("/api/v1/api-keys", headers={"X-API-Key": key})).status_code == 401
    assert _cli(settings, "revoke", "0123456789abcdef").returncode == 1
