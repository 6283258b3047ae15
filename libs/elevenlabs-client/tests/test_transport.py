"""Transport failures are retried, then reported as 502 (real sockets, nothing listening)."""

from __future__ import annotations

import socket

import httpx
import pytest

from elevenlabs_client import ElevenLabsClient, UpstreamError


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unreachable_upstream_is_502_after_retries() -> None:
    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient(
            http,
            base_url=f"http://127.0.0.1:{_closed_port()}",
            api_key="k",
            max_retries=2,
            initial_backoff_s=0.01,
        )
        with pytest.raises(UpstreamError) as caught:
            await client.get_tool("t")
    assert (caught.value.status_code, caught.value.error) == (502, "ElevenLabs unavailable")
