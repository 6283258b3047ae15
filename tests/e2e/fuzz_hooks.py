"""Schemathesis hooks for the fuzz tests (loaded by `st run` through SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def contract_error_format(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Any) -> None:
    """Every 4xx and 5xx is `{"success": false, "error": "...", "detail"?}` (api-v1.md 12)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} is not JSON: {response.text[:200]!r}") from None
    assert isinstance(body, dict), f"{response.status_code} body is not an object: {body!r}"
    assert body.get("success") is False, f"{response.status_code} without success=false: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"], f"no error message: {body!r}"
    assert set(body) <= {"success", "error", "detail"}, f"fields beyond the format: {sorted(body)}"
