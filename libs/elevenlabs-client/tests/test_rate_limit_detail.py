"""A 429 that outlasts the retries keeps ElevenLabs' reason and names a positive delay."""

from __future__ import annotations

import httpx
import pytest

from elevenlabs_client import ElevenLabsClient, UpstreamError, retry_after_from_detail


async def _refused(body: object, headers: dict[str, str] | None = None) -> UpstreamError:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json=body, headers=headers)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = ElevenLabsClient(http, base_url="http://elevenlabs.test", api_key="k", max_retries=0)
        with pytest.raises(UpstreamError) as caught:
            await client.twilio_outbound_call({})
    return caught.value


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("too_many_concurrent_requests", "Too many concurrent calls (limit 2); retry later"),
        ("system_busy", "The system is experiencing heavy traffic, please try again later"),
    ],
)
async def test_429_without_retry_after_keeps_the_reason_and_asks_a_second(status: str, message: str) -> None:
    error = await _refused({"detail": {"status": status, "message": message}})
    assert (error.status_code, error.error) == (429, "Rate limit exceeded")
    assert error.detail == f"{status}: {message}. Retry after 1 seconds"  # was "Retry after 0 seconds"
    assert retry_after_from_detail(error.detail) == 1.0


async def test_429_names_the_delay_elevenlabs_asked_for_rounded_up() -> None:
    error = await _refused({"detail": {"status": "system_busy", "message": "busy"}}, {"Retry-After": "2.2"})
    assert retry_after_from_detail(error.detail) == 3.0
    error = await _refused({"detail": "slow down"}, {"retry-after-ms": "200"})
    assert error.detail == "slow down. Retry after 1 seconds"
