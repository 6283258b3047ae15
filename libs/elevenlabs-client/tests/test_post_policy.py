"""No blind retry of a POST whose outcome is unknown (issue 10 §1), against the real simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from elevenlabs_client import ElevenLabsClient, OutcomeUnknownError, UpstreamError
from elevenlabs_sim.testing import run_in_thread

TOOL = {
    "type": "webhook",
    "name": "lookup",
    "description": "Look things up.",
    "api_schema": {"url": "https://api.example/lookup", "method": "GET"},
}


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with run_in_thread() as url:
        yield url


@pytest.fixture
async def sim(sim_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim_url) as client:
        await client.post("/_sim/reset")
        yield client


@pytest.fixture
async def client(sim_url: str) -> AsyncIterator[ElevenLabsClient]:
    async with httpx.AsyncClient() as http:
        yield ElevenLabsClient(
            http, base_url=sim_url, api_key="sim-key", timeout_s=1.0, max_retries=2, initial_backoff_s=0.01
        )


async def _fault(sim: httpx.AsyncClient, **spec: Any) -> None:
    (await sim.post("/_sim/faults", json=spec)).raise_for_status()


async def _posts(sim: httpx.AsyncClient, path: str) -> list[int]:
    log = (await sim.get("/_sim/requests", params={"method": "POST", "path": path})).json()["requests"]
    return [entry["status"] for entry in log]


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"status": 408},
        {"delay_ms": 2500},  # created, then the answer comes after the client's 1 s timeout
    ],
    ids=["500", "502", "503", "408", "timeout"],
)
async def test_post_with_unknown_outcome_is_not_retried(
    sim: httpx.AsyncClient, client: ElevenLabsClient, fault: dict[str, Any]
) -> None:
    await _fault(sim, method="POST", path_regex="^/v1/convai/tools$", after=True, **fault)
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.create_tool(TOOL)
    assert (caught.value.status_code, caught.value.method, caught.value.path) == (
        502,
        "POST",
        "/v1/convai/tools",
    )
    assert len(await _posts(sim, "/v1/convai/tools")) == 1
    assert (await sim.get("/_sim/state")).json()["tools"] == 1  # it was created all the same


async def test_post_refused_with_429_is_retried(sim: httpx.AsyncClient, client: ElevenLabsClient) -> None:
    await _fault(sim, method="POST", path_regex="^/v1/convai/tools$", status=429, retry_after=0.05)
    created = await client.create_tool(TOOL)
    assert created["id"]
    assert await _posts(sim, "/v1/convai/tools") == [429, 200]


async def test_idempotent_requests_are_still_retried_after_5xx(
    sim: httpx.AsyncClient, client: ElevenLabsClient
) -> None:
    await _fault(sim, method="GET", path_regex="^/v1/convai/tools$", status=503)
    assert await client.list_tools() == []


async def test_post_that_never_connected_is_retried_then_plain_502() -> None:
    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient(
            http, base_url="http://127.0.0.1:9", api_key="k", max_retries=1, initial_backoff_s=0.01
        )
        with pytest.raises(UpstreamError) as caught:
            await client.create_tool(TOOL)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert caught.value.status_code == 502


async def test_create_once_adopts_what_the_lost_request_created(
    sim: httpx.AsyncClient, client: ElevenLabsClient
) -> None:
    await _fault(sim, method="POST", path_regex="^/v1/convai/tools$", status=500, after=True)

    async def find() -> dict[str, Any] | None:
        return next(iter(await client.list_tools(search="lookup")), None)

    tool = await client.create_once(lambda: client.create_tool(TOOL), find, what="tool")
    assert [t["id"] for t in await client.list_tools()] == [tool["id"]]
    assert len(await _posts(sim, "/v1/convai/tools")) == 1


async def test_create_once_creates_again_when_nothing_was_created(
    sim: httpx.AsyncClient, client: ElevenLabsClient
) -> None:
    # A proxy answered 502 before ElevenLabs saw the request: nothing to find, so create again.
    await _fault(sim, method="POST", path_regex="^/v1/convai/tools$", status=502)

    async def find() -> dict[str, Any] | None:
        return next(iter(await client.list_tools(search="lookup")), None)

    tool = await client.create_once(lambda: client.create_tool(TOOL), find, what="tool")
    assert [t["id"] for t in await client.list_tools()] == [tool["id"]]
    assert await _posts(sim, "/v1/convai/tools") == [502, 200]


async def test_create_once_gives_up_after_max_retries(
    sim: httpx.AsyncClient, client: ElevenLabsClient
) -> None:
    await _fault(sim, method="POST", path_regex="^/v1/convai/tools$", status=503, count=10)

    async def find() -> None:
        return None

    with pytest.raises(OutcomeUnknownError):
        await client.create_once(lambda: client.create_tool(TOOL), find, what="tool")
    assert len(await _posts(sim, "/v1/convai/tools")) == 3  # 1 + max_retries, each after a lookup


async def test_connection_lost_after_sending_is_outcome_unknown_and_get_is_retried() -> None:
    """A server that reads the whole request, then drops the connection without answering."""
    received: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        received.append(head.split(b"\r\n")[0] + b" " + await reader.readexactly(length))
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient() as http:
        client = ElevenLabsClient(
            http, base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=2, initial_backoff_s=0.01
        )
        with pytest.raises(OutcomeUnknownError):
            await client.create_agent({"name": "x"})
        assert len(received) == 1  # sent once, never again
        with pytest.raises(UpstreamError) as caught:
            await client.get_agent("a")
        assert not isinstance(caught.value, OutcomeUnknownError)
        assert len(received) == 1 + 3  # an idempotent GET is retried


async def test_a_client_from_settings_takes_them_and_a_dialer_never_retries(
    sim: httpx.AsyncClient, sim_url: str
) -> None:
    @dataclass(frozen=True)
    class Settings:
        elevenlabs_base_url: str
        elevenlabs_api_key: SecretStr
        upstream_timeout_s: float = 1.0
        upstream_max_retries: int = 2
        upstream_initial_backoff_s: float = 0.01
        upstream_max_backoff_s: float = 0.05

    settings = Settings(sim_url, SecretStr("sim-key"))
    await _fault(sim, method="GET", path_regex="^/v1/convai/tools$", status=429, count=1)
    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient.from_settings(http, settings)
        dialer = ElevenLabsClient.from_settings(http, settings, max_retries=0)
        assert (client.api_key, client.max_retries, client.max_backoff_s) == ("sim-key", 2, 0.05)
        assert await client.list_tools() == []  # the 429 was retried
        await _fault(sim, method="GET", path_regex="^/v1/convai/tools$", status=429, count=1)
        with pytest.raises(UpstreamError) as refused:
            await dialer.list_tools()
    assert refused.value.status_code == 429
