"""Retry-After parsing (the delay the server asks for)."""

from __future__ import annotations

import email.utils

import httpx

from elevenlabs_client import retry_after_seconds


def test_retry_after_ms_wins() -> None:
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "3"})) == 3.0
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": date}), now=now) == 7.0
    assert retry_after_seconds(httpx.Headers({})) is None
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None
