"""Per-key rate limits: a token bucket per key in PostgreSQL, shared by every gateway replica, answered
429 with `Retry-After` in the error format (issue 12, "Tokens and keys", API keys).

Real PostgreSQL; replicas are apps over their own engines. Refill is tested with the clock passed in
(`AccessService.admit(at=...)`), never by waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.access import Scope
from gateway.app import create_app
from gateway.bootstrap import Container, bootstrap
from gateway.errors import RateLimited
from gateway.settings import Settings

from .conftest import API_KEY

pytestmark = pytest.mark.integration

ADMIN = {"X-API-Key": API_KEY}
SLOW = 0.01  # tokens per second: one every 100 s, so nothing refills while a test runs


@asynccontextmanager
async def replica(settings: Settings, **overrides: Any) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    box = bootstrap(Settings.model_validate({**settings.model_dump(by_alias=True), **overrides}))
    transport = httpx.ASGITransport(app=create_app(box), raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield box, client
    finally:
        await box.http.aclose()
        await box.engine.dispose()


async def _key(box: Container, **limits: Any) -> dict[str, str]:
    """A new operator key (created through the service: the admin env key may be limited itself)."""
    _, api_key = await box.access.create_key("limited", Scope.OPERATOR, **limits)
    return {"X-API-Key": api_key}


def _limited(response: httpx.Response) -> int:
    """Asserts a 429 in the contract's format; returns its Retry-After."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    body = response.json()
    assert set(body) == {"success", "error", "detail"}
    assert body["success"] is False and body["error"] == "Rate limit exceeded"
    assert body["detail"].startswith(f"Retry after {retry_after} seconds: ")
    return retry_after


async def test_a_key_past_its_burst_gets_429_with_retry_after(settings: Settings) -> None:
    async with replica(settings) as (box, api):
        key = await _key(box, rate_limit_per_s=SLOW, rate_limit_burst=3)
        for _ in range(3):
            assert (await api.get("/api/v1/agents", headers=key)).status_code == 200
        refused = await api.get("/api/v1/agents", headers=key)
        assert 90 <= _limited(refused) <= 100  # the next token is ~100 s away
        assert "0.01 requests per second on average, 3 at once" in refused.json()["detail"]
        # Every route, writes too; the limit is the key's, not the route's.
        _limited(await api.post("/api/v1/agents", json={"name": "x"}, headers=key))
        # Other keys are not affected.
        assert (await api.get("/api/v1/agents", headers=await _key(box))).status_code == 200


async def test_a_forbidden_request_takes_no_token(settings: Settings) -> None:
    async with replica(settings) as (box, api):
        key = await _key(box, rate_limit_per_s=SLOW, rate_limit_burst=1)
        for _ in range(3):
            assert (await api.get("/api/v1/api-keys", headers=key)).status_code == 403
        assert (await api.get("/api/v1/agents", headers=key)).status_code == 200
        _limited(await api.get("/api/v1/agents", headers=key))


async def test_the_bucket_refills_at_its_rate_up_to_its_burst(container: Container) -> None:
    _, key = await container.access.create_key("clocked", Scope.READ, rate_limit_per_s=2, rate_limit_burst=2)
    t0 = datetime(2031, 1, 1, tzinfo=UTC)

    async def admit(after_s: float) -> int | None:
        """None when admitted, else the Retry-After."""
        try:
            await container.access.admit(key, "GET", "/api/v1/agents", at=t0 + timedelta(seconds=after_s))
        except RateLimited as refused:
            return refused.retry_after_s
        return None

    assert [await admit(0), await admit(0)] == [None, None]  # a new bucket starts full
    assert await admit(0) == 1  # 0.5 s to the next token: Retry-After rounds up to whole seconds
    assert await admit(0.25) == 1
    assert [await admit(0.5), await admit(0.5)] == [None, 1]  # one token back after 1/rate
    assert [await admit(60), await admit(60), await admit(60)] == [None, None, 1]  # capped at the burst


async def test_the_limit_holds_across_replicas(settings: Settings) -> None:
    async with replica(settings) as (box, a), replica(settings) as (_, b):
        key = await _key(box, rate_limit_per_s=SLOW, rate_limit_burst=4)
        codes = [(await api.get("/api/v1/agents", headers=key)).status_code for api in (a, b, a, b)]
        assert codes == [200, 200, 200, 200]
        _limited(await b.get("/api/v1/agents", headers=key))
        _limited(await a.get("/api/v1/agents", headers=key))


async def test_concurrent_requests_on_two_replicas_take_exactly_the_burst(settings: Settings) -> None:
    """The take is one atomic statement: 24 requests at once, half on each replica, 8 get through."""
    async with replica(settings) as (a, _), replica(settings) as (b, _):
        _, key = await a.access.create_key("raced", Scope.READ, rate_limit_per_s=SLOW, rate_limit_burst=8)

        async def one(box: Container) -> bool:
            try:
                await box.access.admit(key, "GET", "/api/v1/agents")
            except RateLimited:
                return False
            return True

        admitted = await asyncio.gather(*(one(box) for box in [a, b] * 12))
        assert sum(admitted) == 8


async def test_the_settings_are_the_default_and_a_key_may_override_them(settings: Settings) -> None:
    async with replica(settings, GATEWAY_RATE_LIMIT_PER_S=SLOW, GATEWAY_RATE_LIMIT_BURST=2) as (box, api):
        default = await _key(box)
        unlimited = await _key(box, rate_limit_per_s=0)
        bigger = await _key(box, rate_limit_burst=5)
        assert [(await api.get("/api/v1/agents", headers=default)).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        assert {(await api.get("/api/v1/agents", headers=unlimited)).status_code for _ in range(10)} == {200}
        assert [(await api.get("/api/v1/agents", headers=bigger)).status_code for _ in range(6)] == [
            200
        ] * 5 + [429]
        listed = [k.__dict__ for k in await box.access.keys()]
        assert {(k["rate_limit_per_s"], k["rate_limit_burst"]) for k in listed} >= {
            (None, None),
            (0, None),
            (None, 5),
        }


async def test_env_keys_have_the_default_limit_and_zero_means_unlimited(settings: Settings) -> None:
    env = {"SWITCHBOARD_API_KEYS": f"{API_KEY},env-limited"}
    async with replica(settings, GATEWAY_RATE_LIMIT_PER_S=SLOW, GATEWAY_RATE_LIMIT_BURST=2, **env) as (
        _,
        api,
    ):
        key = {"X-API-Key": "env-limited"}
        assert [(await api.get("/api/v1/agents", headers=key)).status_code for _ in range(2)] == [200, 200]
        _limited(await api.get("/api/v1/agents", headers=key))
    async with replica(settings, GATEWAY_RATE_LIMIT_PER_S=0, **env) as (_, api):
        key = {"X-API-Key": "env-limited"}
        assert {(await api.get("/api/v1/agents", headers=key)).status_code for _ in range(5)} == {200}


@pytest.mark.parametrize(
    ("limits", "problem"),
    [
        ({"rate_limit_per_s": -1}, "rate_limit_per_s"),
        ({"rate_limit_burst": 0}, "rate_limit_burst"),
        ({"rate_limit_burst": 1.5}, "rate_limit_burst"),
        # Past the INTEGER column: found by the API fuzzer (it was a 500 from the database).
        ({"rate_limit_burst": 250518570743}, "rate_limit_burst"),
        ({"rate_limit_burst": 2**31}, "rate_limit_burst"),
        ({"rate_limit_per_s": "fast"}, "rate_limit_per_s"),
    ],
)
async def test_a_bad_limit_is_a_422(container: Container, limits: dict[str, Any], problem: str) -> None:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as api:
        response = await api.post(
            "/api/v1/api-keys", json={"name": "x", "scope": "read", **limits}, headers=ADMIN
        )
    assert response.status_code == 422 and problem in response.json()["detail"], response.text


async def test_limits_are_set_over_rest_and_enforced(container: Container) -> None:
    transport = httpx.ASGITransport(app=create_app(container), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as api:
        created = await api.post(
            "/api/v1/api-keys",
            json={"name": "ci", "scope": "read", "rate_limit_per_s": SLOW, "rate_limit_burst": 1},
            headers=ADMIN,
        )
        assert created.status_code == 201, created.text
        assert (created.json()["rate_limit_per_s"], created.json()["rate_limit_burst"]) == (SLOW, 1)
        key = {"X-API-Key": created.json()["api_key"]}
        assert (await api.get("/api/v1/agents", headers=key)).status_code == 200
        _limited(await api.get("/api/v1/agents", headers=key))
