"""The gateway's one error hierarchy; every error leaves as `{"success": false, "error", "detail"}`."""

from __future__ import annotations

from bus.http_errors import error_body


class ApiError(Exception):
    status_code = 400

    def __init__(self, error: str, detail: object = None, *, status_code: int | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code

    def body(self) -> dict[str, object]:
        """The contract's error body; without a `detail`, the status's general one."""
        return error_body(self.status_code, self.error, self.detail)


class BadRequest(ApiError):
    status_code = 400


class Unauthorized(ApiError):
    status_code = 401


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class UnsupportedMediaType(ApiError):
    status_code = 415


class Unprocessable(ApiError):
    status_code = 422


class RateLimited(ApiError):
    """429; `retry_after_s` (whole seconds, at least 1) becomes the `Retry-After` header."""

    status_code = 429

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__("Rate limit exceeded", detail)
        self.retry_after_s = retry_after_s
