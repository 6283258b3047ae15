"""`Idempotency-Key` on every POST: the same key and body within the replay window
(GATEWAY_IDEMPOTENCY_RETENTION_HOURS, 24 h) replays the first answer.

A different body with the same key is a 422; a duplicate while the first is still running is a 409.
After the window the key is forgotten (retention deletes it) and a request with it is a new request.
The command published for a keyed request gets a message id derived from the key and the start of
its window, so even a request retried after a gateway crash publishes the same command, which its
service deduplicates: a retried call request can never dial twice. A new window gets a new id, so
the new request is neither answered from the old operation nor dropped as a redelivery.

`POST /api/v1/api-keys` is never replayed: its answer holds a new key, which is never stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from python_multipart.multipart import parse_options_header

from gateway.access import presented_api_key
from gateway.errors import ApiError, BadRequest, Conflict, Unprocessable
from gateway.uow import UnitOfWork

HEADER = "Idempotency-Key"
# A keyed request still "in progress" after this long was abandoned (its gateway died): let a retry
# take over. Safe because the retry publishes the same command id.
STALE_AFTER = timedelta(seconds=60)

# Routes whose answer holds a secret shown once (a new API key's): never kept for a replay.
NEVER_STORED = frozenset({"/api/v1/api-keys"})

command_id_for_request: ContextVar[str | None] = ContextVar("command_id_for_request", default=None)


def _sha(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


# Answer fields shown once and never stored: a replay answers them as null (a webhook's signing
# secret is kept only encrypted, by the notifier; a lost one is replaced by a new webhook).
NOT_REPLAYED_FIELDS = ("signing_secret",)


def _without_secrets(body: bytes, content_type: str | None) -> bytes:
    if not (content_type or "").startswith("application/json") or not any(
        f.encode() in body for f in NOT_REPLAYED_FIELDS
    ):
        return body
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict):
        return body
    for name in NOT_REPLAYED_FIELDS:
        if name in parsed:
            parsed[name] = None
    return json.dumps(parsed).encode()


def _without_boundary(body: bytes, content_type: str | None) -> bytes:
    """A multipart body with its boundary replaced by a fixed one: every client draws a new random
    boundary for each request (RFC 7578), so a retried upload is the same request in other bytes."""
    media_type, options = parse_options_header(content_type or "")
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        return body
    return body.replace(b"--" + boundary, b"--switchboard-idempotency-boundary")


class IdempotencyMiddleware:
    def __init__(self, uow: Callable[[], UnitOfWork], replay_window: timedelta) -> None:
        self.uow = uow
        self.replay_window = replay_window

    async def __call__(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        header = request.headers.get(HEADER)
        presented = presented_api_key(request.headers)
        if (
            request.method != "POST"
            or header is None
            or not request.url.path.startswith("/api/v1/")
            or getattr(request.state, "principal", None) is None  # gateway.guard answered already
            or request.url.path.rstrip("/") in NEVER_STORED
        ):
            return await call_next(request)
        try:
            scope_key, request_hash = self._hashes(request, header, presented, await request.body())
            replay, window_start = await self._claim(scope_key, request_hash)
        except ApiError as exc:
            return JSONResponse(exc.body(), status_code=exc.status_code)
        if replay is not None:
            return replay
        command_id = _sha(b"command", scope_key.encode(), window_start.isoformat().encode())[:32]
        token = command_id_for_request.set(command_id)
        try:
            response = await call_next(request)
        finally:
            command_id_for_request.reset(token)
        body = b"".join([chunk async for chunk in response.body_iterator])  # type: ignore[attr-defined]
        async with self.uow() as uow:
            if response.status_code >= 500:
                await uow.idempotency.release(scope_key)  # a server failure may be retried with the same key
            else:
                stored = _without_secrets(body, response.headers.get("content-type"))
                await uow.idempotency.finish(scope_key, response.status_code, stored, response.media_type)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(
            body, status_code=response.status_code, headers=headers, media_type=response.media_type
        )

    def _hashes(self, request: Request, header: str, presented: str, body: bytes) -> tuple[str, str]:
        if not 1 <= len(header) <= 255:
            raise BadRequest("Invalid Idempotency-Key", "Use 1 to 255 characters, e.g. a UUID")
        scope_key = _sha(presented.encode(), header.encode())
        request_hash = _sha(
            request.method.encode(),
            request.url.path.encode(),
            request.url.query.encode(),
            _without_boundary(body, request.headers.get("content-type")),
        )
        return scope_key, request_hash

    async def _claim(self, scope_key: str, request_hash: str) -> tuple[Response | None, datetime]:
        """(None, start of the key's window) when this request should run; else (the response to
        give instead, its window)."""
        async with self.uow() as uow:
            if (window_start := await uow.idempotency.claim(scope_key, request_hash)) is not None:
                return None, window_start
        async with self.uow() as uow:
            row = await uow.idempotency.get_for_update(scope_key)
            now = datetime.now(UTC)
            if row is None:  # pruned in between
                window_start = await uow.idempotency.claim(scope_key, request_hash)
                if window_start is None:  # another request with the key claimed it first
                    raise Conflict(
                        "A request with this Idempotency-Key is in progress", "Retry after it has finished"
                    )
                return None, window_start
            if now - row.created_at > self.replay_window:
                return None, await uow.idempotency.restart(scope_key, request_hash, new_window=True)
            if row.request_hash != request_hash:
                raise Unprocessable(
                    "Idempotency-Key reused with a different request",
                    "Send a new Idempotency-Key for a different request body",
                )
            if row.status == "released":
                # The first attempt failed (5xx): run again, in the same window, as the same command.
                return None, await uow.idempotency.restart(scope_key, request_hash, new_window=False)
            if row.status == "done" and row.status_code is not None:
                replay = Response(
                    row.response or b"",
                    status_code=row.status_code,
                    media_type=row.content_type,
                    headers={"Idempotent-Replayed": "true"},
                )
                return replay, row.created_at
            if now - row.updated_at > STALE_AFTER:
                # The same window, hence the same command id as the abandoned attempt.
                return None, await uow.idempotency.restart(scope_key, request_hash, new_window=False)
            raise Conflict(
                "A request with this Idempotency-Key is in progress", "Retry after it has finished"
            )
