"""Authenticate and authorise, then cap the body: before routing, before FastAPI reads a byte of it.

FastAPI parses a JSON or multipart body before any dependency runs, so an API-key dependency would
let an unauthenticated client make the gateway spool a multi-gigabyte upload to disk before refusing
it. This pure ASGI middleware answers first:

- `/api/v1/*` without a valid key (`Authorization: Bearer <key>` or `X-API-Key`; a stored key or one
  of SWITCHBOARD_API_KEYS, `AccessService.admit`): 401, the body unread (the server stops reading and
  closes the connection after answering); a key whose scope is below the route's
  (`gateway.access.ROUTE_SCOPES`): 403, unread too; a key past its rate limit: 429 with
  `Retry-After`, unread;
- a declared `Content-Length` over the route's cap: 413 at once;
- a streamed body (chunked, no `Content-Length`) is counted as the application reads it: 413 as soon
  as it passes the cap, and the application sees the client as gone.

Caps (bytes): `GATEWAY_MAX_BODY_BYTES` for every route, `KB_MAX_UPLOAD_BYTES` plus room for the
multipart framing for the knowledge-base uploads, `BATCH_MAX_BODY_BYTES` for JSON batch submissions
and validations, `BATCH_FILE_MAX_BYTES` for the same routes given a spreadsheet (multipart).
The bus's own message limit (`bus.limits`, `BUS_MAX_MESSAGE_BYTES`) is the second gate.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.http_errors import error_body
from gateway.access import presented_api_key
from gateway.errors import ApiError, RateLimited
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.auth import AccessService

log = structlog.get_logger("gateway.guard")

PROTECTED_PREFIX = "/api/v1/"
# Multipart boundaries, part headers and the small form fields (name, parent_folder_id) around a file.
MULTIPART_ROOM = 64 * 1024
UPLOAD_ROUTES = ("/api/v1/knowledge-base/file", "/api/v1/knowledge-base/ingest")
BATCH_ROUTES = (
    "/api/v1/batch-calling/submit",
    "/api/v1/batch-calling/validate",
    # The console's forms that carry the same spreadsheets (signed in before a byte is read).
    "/console/campaigns-new/validate",
    "/console/campaigns-new/submit",
    "/console/do-not-call/import",
)


def body_cap(settings: Settings, path: str, content_type: str = "") -> tuple[int, str]:
    """(the largest body in bytes a request to `path` may send, the setting that says so)."""
    normalised = path.rstrip("/")
    if normalised in UPLOAD_ROUTES:
        return settings.kb_max_upload_bytes + MULTIPART_ROOM, "KB_MAX_UPLOAD_BYTES"
    if normalised in BATCH_ROUTES:
        if content_type.lower().startswith("multipart/form-data"):
            return settings.batch_file_max_bytes, "BATCH_FILE_MAX_BYTES"
        return settings.batch_max_body_bytes, "BATCH_MAX_BODY_BYTES"
    return settings.max_body_bytes, "GATEWAY_MAX_BODY_BYTES"


async def _answer(
    send: Send,
    status: int,
    error: str,
    detail: object,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps(error_body(status, error, detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is never read: the connection cannot carry another request.
                (b"connection", b"close"),
                *(extra_headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_large(cap: int, setting: str) -> tuple[int, str, str]:
    return (
        413,
        "Payload too large",
        f"The request body exceeds {cap} bytes, the limit of this route ({setting})",
    )


def is_protected(path: str) -> bool:
    return path.startswith(PROTECTED_PREFIX) or path == PROTECTED_PREFIX.rstrip("/")


class RequestGuard:
    def __init__(self, app: ASGIApp, settings: Settings, access: AccessService) -> None:
        self.app = app
        self.settings = settings
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if is_protected(path) and path.endswith("/") and path.rstrip("/") != PROTECTED_PREFIX.rstrip("/"):
            # `/api/v1/agents/` is `/api/v1/agents`: served, not redirected. Starlette answered a
            # 307 with an empty body, which a client that does not follow redirects (httpx, or curl
            # without -L) shows as an empty answer, and a POST would be sent twice to follow it.
            path = path.rstrip("/")
            scope = dict(scope, path=path, raw_path=path.encode())
        headers = Headers(scope=scope)
        if is_protected(path) and not await self._admitted(scope, headers, send):
            return
        cap, setting = body_cap(self.settings, path, headers.get("content-type", ""))
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await _answer(send, *_too_large(cap, setting))
            return
        await self._counted(scope, receive, send, cap, setting)

    async def _admitted(self, scope: Scope, headers: Headers, send: Send) -> bool:
        """Whether the request may go on; else its answer (401, 403, 429, 503) was sent. The principal
        goes into the request's state (`request.state.principal`)."""
        try:
            principal = await self.access.admit(presented_api_key(headers), scope["method"], scope["path"])
        except ApiError as exc:
            retry = (
                [(b"retry-after", str(exc.retry_after_s).encode())] if isinstance(exc, RateLimited) else []
            )
            await _answer(send, exc.status_code, exc.error, exc.detail, retry)
            return False
        except (SQLAlchemyError, OSError) as exc:  # the database is down: no key can be checked
            log.warning("gateway.guard.keys_unavailable", error=type(exc).__name__)
            await _answer(send, 503, "Service unavailable", "API keys cannot be checked; retry shortly")
            return False
        scope.setdefault("state", {})["principal"] = principal
        return True

    async def _counted(self, scope: Scope, receive: Receive, send: Send, cap: int, setting: str) -> None:
        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    refused = True
                    if not started:
                        await _answer(send, *_too_large(cap, setting))
                    # The application stops reading as if the client had gone; its answer is dropped.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not refused:  # the application failing on the "disconnect" we made up is expected
                raise
