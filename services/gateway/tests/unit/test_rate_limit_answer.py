"""A 429 outcome tells the client when to retry (Retry-After, whole seconds, at least 1) and why."""

from __future__ import annotations

import pytest

from gateway.domain import Outcome, retry_after_s
from gateway.routes.deps import respond


@pytest.mark.parametrize(
    ("detail", "seconds"),
    [
        ("too_many_concurrent_requests: Too many concurrent calls. Retry after 1 seconds", 1),
        ("system_busy: heavy traffic. Retry after 2.2 seconds", 3),
        ("Retry after 0 seconds", 1),  # what a single call answered before: never 0
        ("no figure at all", 1),
        (None, 1),
    ],
)
def test_rate_limited_outcome_has_a_positive_retry_after_header(detail: str | None, seconds: int) -> None:
    body = {"success": False, "error": "Rate limit exceeded"} | ({"detail": detail} if detail else {})
    assert retry_after_s(body) == seconds
    response = respond(Outcome(429, body))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == str(seconds)


def test_other_outcomes_have_no_retry_after() -> None:
    assert "Retry-After" not in respond(Outcome(422, {"success": False, "error": "x"})).headers
