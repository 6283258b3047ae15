"""THE ElevenLabs client of Switchboard (provisioning, telephony and tool-webhooks use it).

Built on httpx rather than the official `elevenlabs` SDK on purpose: we need exact control of
retries (honouring `Retry-After` / `retry-after-ms`, bounded by our settings), one error type
mapped to the statuses our API reports, and correlation headers on every call.

Retry policy. ElevenLabs has no idempotency keys, so a POST (every POST creates something or
places a call) is retried only when it certainly had no effect: a 429 (refused), or a connection
that could not be opened (nothing was sent). After a timeout, a connection lost once the request
was sent, or a 408/5xx answer, its outcome is unknown: the client raises `OutcomeUnknownError`
instead of retrying, and the caller looks the resource up before creating again
(`ElevenLabsClient.create_once`). GET, PATCH and DELETE are idempotent and retried on all of these.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import httpx
import structlog

from bus.context import CORRELATION_HEADER, current_correlation_id
from bus.errors import CommandError

log = structlog.get_logger("elevenlabs")

_RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
# Statuses after which a non-idempotent request is known to have had no effect.
_REFUSED_STATUSES = frozenset({429})
# Transport failures that happen before any byte of the request is sent.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_NON_IDEMPOTENT_METHODS = frozenset({"POST"})
JSON = dict[str, Any]
T = TypeVar("T")


class UpstreamError(CommandError):
    """An ElevenLabs call failed; `status_code`/`error`/`detail` are what our caller should see
    (a `CommandError`: a command that meets it fails with them)."""


class OutcomeUnknownError(UpstreamError):
    """A non-idempotent request (a POST) may or may not have taken effect upstream.

    Raised, never retried, when the request was sent and then timed out, lost its connection, or
    got a 408/5xx answer: ElevenLabs may have created the resource (or placed the call) anyway.
    Look the result up by something the request carried (a tag, a name, a secret name, a dynamic
    variable) before acting again; `ElevenLabsClient.create_once` does this for creates.

    Reported to callers like any unavailability: `status_code` 502, `error` "ElevenLabs
    unavailable"; `method`, `path` and `cause` say which request and what happened.
    """

    def __init__(self, method: str, path: str, cause: str) -> None:
        super().__init__(502, "ElevenLabs unavailable", f"Outcome of {method} {path} unknown: {cause}")
        self.method = method
        self.path = path
        self.cause = cause


def retry_after_seconds(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """Delay the server asked for: `retry-after-ms`, else `Retry-After` (seconds or HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_RETRY_AFTER_DETAIL = re.compile(r"Retry after (\d+(?:\.\d+)?) seconds")


def retry_after_from_detail(detail: str | None) -> float | None:
    """The delay a 429 `UpstreamError`'s detail names ("... Retry after 3 seconds")."""
    match = _RETRY_AFTER_DETAIL.search(detail or "")
    return float(match.group(1)) if match else None


def _detail_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return str(detail["message"])
    return detail if isinstance(detail, str) else jsonlib.dumps(detail)


def _reason_text(response: httpx.Response) -> str:
    """`{"detail": {"status": "system_busy", "message": "..."}}` → "system_busy: ..."."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"Upstream status {response.status_code}"
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict) and isinstance(detail.get("status"), str):
        message = detail.get("message")
        return f"{detail['status']}: {message}" if isinstance(message, str) else str(detail["status"])
    return _detail_text(response)


def _map_error(response: httpx.Response, retry_after: float | None) -> UpstreamError:
    status = response.status_code
    if status == 404:
        return UpstreamError(404, "Not found", _detail_text(response))
    if status == 422:
        return UpstreamError(422, "Validation error", _detail_text(response))
    if status in (401, 403):
        return UpstreamError(401, "Authentication failed", _detail_text(response))
    if status == 429:
        # Keep ElevenLabs' reason (system_busy vs too_many_concurrent_requests: retry soon vs fewer
        # calls at once) and always name a positive delay: it does not always send Retry-After.
        wait = max(1, math.ceil(retry_after or 0))
        return UpstreamError(
            429, "Rate limit exceeded", f"{_reason_text(response)}. Retry after {wait} seconds"
        )
    if status >= 500:
        return UpstreamError(502, "ElevenLabs unavailable", f"Upstream status {status}")
    return UpstreamError(status, "Upstream request failed", _detail_text(response))


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


class UpstreamSettings(Protocol):
    """The settings a service calls ElevenLabs with (its own settings class has them)."""

    @property
    def elevenlabs_base_url(self) -> str: ...

    @property
    def elevenlabs_api_key(self) -> _Secret: ...

    @property
    def upstream_timeout_s(self) -> float: ...

    @property
    def upstream_max_retries(self) -> int: ...

    @property
    def upstream_initial_backoff_s(self) -> float: ...

    @property
    def upstream_max_backoff_s(self) -> float: ...


class ElevenLabsClient:
    """Async ElevenLabs Agents Platform client; the `httpx.AsyncClient` is owned by the caller."""

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, settings: UpstreamSettings, *, max_retries: int | None = None
    ) -> ElevenLabsClient:
        """A client configured by a service's settings; `max_retries` overrides theirs (0: a client
        that never retries by itself, for requests a retry could repeat upstream)."""
        return cls(
            http,
            base_url=settings.elevenlabs_base_url,
            api_key=settings.elevenlabs_api_key.get_secret_value(),
            timeout_s=settings.upstream_timeout_s,
            max_retries=settings.upstream_max_retries if max_retries is None else max_retries,
            initial_backoff_s=settings.upstream_initial_backoff_s,
            max_backoff_s=settings.upstream_max_backoff_s,
        )

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s

    # ---- transport -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> httpx.Response:
        """One call with bounded retries; raises `UpstreamError`, or `OutcomeUnknownError` for a
        POST whose effect is unknown (see the module docstring)."""
        headers = {"xi-api-key": self.api_key, "Accept": "application/json"}
        if correlation_id := current_correlation_id():
            headers[CORRELATION_HEADER] = correlation_id
        url = f"{self.base_url}{path}"
        idempotent = method.upper() not in _NON_IDEMPOTENT_METHODS
        attempt = 0
        while True:
            try:
                response = await self.http.request(
                    method,
                    url,
                    json=json,
                    params=params,
                    data=data,
                    files=files,
                    headers=headers,
                    timeout=self.timeout_s,
                )
            except httpx.TransportError as exc:
                if not idempotent and not isinstance(exc, _NOT_SENT_ERRORS):
                    log.warning("elevenlabs.outcome_unknown", method=method, path=path, error=repr(exc))
                    raise OutcomeUnknownError(method, path, repr(exc)) from exc
                if attempt >= self.max_retries:
                    raise UpstreamError(502, "ElevenLabs unavailable", repr(exc)) from exc
                delay = self._backoff(attempt, None)
                log.warning("elevenlabs.retry", method=method, path=path, error=repr(exc), delay_s=delay)
            else:
                if response.is_success:
                    return response
                status = response.status_code
                retry_after = retry_after_seconds(response.headers)
                if not idempotent and status in _RETRY_STATUSES and status not in _REFUSED_STATUSES:
                    log.warning("elevenlabs.outcome_unknown", method=method, path=path, status=status)
                    raise OutcomeUnknownError(method, path, f"upstream status {status}")
                if status not in _RETRY_STATUSES or attempt >= self.max_retries:
                    raise _map_error(response, retry_after)
                delay = self._backoff(attempt, retry_after)
                log.warning("elevenlabs.retry", method=method, path=path, status=status, delay_s=delay)
            attempt += 1
            await asyncio.sleep(delay)  # backoff before the next attempt

    async def create_once(
        self,
        create: Callable[[], Awaitable[T]],
        find: Callable[[], Awaitable[T | None]],
        *,
        what: str,
    ) -> T:
        """Run a non-idempotent `create`, recovering by lookup when its outcome is unknown.

        After an `OutcomeUnknownError` it backs off (the lost request may still be running
        upstream), then calls `find`: a resource found is the one the lost request created and is
        returned; none found means nothing was created, so `create` runs again. At most
        `max_retries` repeats (the lookup always runs), then the last `OutcomeUnknownError` is
        raised. `find` must only match what this very operation could have created (a tag, a
        per-command name...).
        """
        attempt = 0
        while True:
            try:
                return await create()
            except OutcomeUnknownError as exc:
                await asyncio.sleep(self._backoff(attempt, None))
                found = await find()
                if found is not None:
                    log.info("elevenlabs.outcome_unknown.found", what=what, path=exc.path)
                    return found
                log.warning("elevenlabs.outcome_unknown.not_created", what=what, path=exc.path)
                if attempt >= self.max_retries:
                    raise
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        base: float = min(self.initial_backoff_s * 2.0**attempt, self.max_backoff_s)
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

    async def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        response = await self.request(method, path, **kwargs)
        if not response.content:
            return {}
        body = response.json()
        return body if isinstance(body, dict) else {"value": body}

    # ---- tools and secrets ---------------------------------------------------------------------

    async def create_tool(self, tool_config: JSON) -> JSON:
        return await self._json("POST", "/v1/convai/tools", json={"tool_config": tool_config})

    async def list_tools(self, *, search: str | None = None, page_size: int = 100) -> list[JSON]:
        return await self._list("/v1/convai/tools", "tools", search=search, page_size=page_size)

    async def get_tool(self, tool_id: str) -> JSON:
        return await self._json("GET", f"/v1/convai/tools/{tool_id}")

    async def update_tool(self, tool_id: str, tool_config: JSON) -> JSON:
        """Replace a tool's config (`PATCH /v1/convai/tools/{id}`); idempotent."""
        return await self._json("PATCH", f"/v1/convai/tools/{tool_id}", json={"tool_config": tool_config})

    async def delete_tool(self, tool_id: str) -> None:
        await self.request("DELETE", f"/v1/convai/tools/{tool_id}", params={"force": "true"})

    async def create_secret(self, name: str, value: str) -> JSON:
        return await self._json(
            "POST", "/v1/convai/secrets", json={"type": "new", "name": name, "value": value}
        )

    async def delete_secret(self, secret_id: str) -> None:
        """409 `secret_in_use` while a tool still points at it."""
        await self.request("DELETE", f"/v1/convai/secrets/{secret_id}")

    async def list_secrets(self) -> list[JSON]:
        body = await self._json("GET", "/v1/convai/secrets")
        secrets = body.get("secrets", [])
        return list(secrets) if isinstance(secrets, list) else []

    # ---- knowledge base ------------------------------------------------------------------------

    async def create_kb_text(self, text: str, name: str | None, parent_folder_id: str | None) -> JSON:
        body = _without_none({"text": text, "name": name, "parent_folder_id": parent_folder_id})
        return await self._json("POST", "/v1/convai/knowledge-base/text", json=body)

    async def create_kb_url(self, url: str, name: str | None, parent_folder_id: str | None) -> JSON:
        body = _without_none({"url": url, "name": name, "parent_folder_id": parent_folder_id})
        return await self._json("POST", "/v1/convai/knowledge-base/url", json=body)

    async def create_kb_file(
        self,
        content: bytes,
        file_name: str,
        content_type: str,
        name: str | None,
        parent_folder_id: str | None,
    ) -> JSON:
        data = _without_none({"name": name, "parent_folder_id": parent_folder_id})
        return await self._json(
            "POST",
            "/v1/convai/knowledge-base/file",
            data=data,
            files={"file": (file_name, content, content_type)},
        )

    async def get_kb_document(self, document_id: str) -> JSON:
        return await self._json("GET", f"/v1/convai/knowledge-base/{document_id}")

    async def list_kb_documents(self, *, search: str | None = None, page_size: int = 100) -> list[JSON]:
        return await self._list("/v1/convai/knowledge-base", "documents", search=search, page_size=page_size)

    async def delete_kb_document(self, document_id: str) -> None:
        await self.request("DELETE", f"/v1/convai/knowledge-base/{document_id}", params={"force": "true"})

    # ---- agents --------------------------------------------------------------------------------

    async def create_agent(self, body: JSON) -> str:
        created = await self._json("POST", "/v1/convai/agents/create", json=body)
        return str(created["agent_id"])

    async def get_agent(self, agent_id: str) -> JSON:
        return await self._json("GET", f"/v1/convai/agents/{agent_id}")

    async def patch_agent(self, agent_id: str, body: JSON) -> JSON:
        return await self._json("PATCH", f"/v1/convai/agents/{agent_id}", json=body)

    async def delete_agent(self, agent_id: str) -> None:
        await self.request("DELETE", f"/v1/convai/agents/{agent_id}")

    async def list_agents(self, *, search: str | None = None, page_size: int = 100) -> list[JSON]:
        return await self._list("/v1/convai/agents", "agents", search=search, page_size=page_size)

    # ---- phone numbers and calls ----------------------------------------------------------------

    async def create_phone_number(self, body: JSON) -> str:
        created = await self._json("POST", "/v1/convai/phone-numbers", json=body)
        return str(created["phone_number_id"])

    async def get_phone_number(self, phone_number_id: str) -> JSON:
        return await self._json("GET", f"/v1/convai/phone-numbers/{phone_number_id}")

    async def list_phone_numbers(self) -> list[JSON]:
        response = await self.request("GET", "/v1/convai/phone-numbers")
        body = response.json()
        return list(body) if isinstance(body, list) else []

    async def patch_phone_number(self, phone_number_id: str, body: JSON) -> JSON:
        return await self._json("PATCH", f"/v1/convai/phone-numbers/{phone_number_id}", json=body)

    async def delete_phone_number(self, phone_number_id: str) -> None:
        await self.request("DELETE", f"/v1/convai/phone-numbers/{phone_number_id}")

    async def twilio_outbound_call(self, body: JSON) -> JSON:
        """Answers `{success, message, conversation_id, callSid}` (note the camelCase)."""
        return await self._json("POST", "/v1/convai/twilio/outbound-call", json=body)

    async def sip_trunk_outbound_call(self, body: JSON) -> JSON:
        """Answers `{success, message, conversation_id, sip_call_id}`."""
        return await self._json("POST", "/v1/convai/sip-trunk/outbound-call", json=body)

    async def get_conversation(self, conversation_id: str) -> JSON:
        return await self._json("GET", f"/v1/convai/conversations/{conversation_id}")

    async def list_conversations(
        self,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        call_start_after_unix: int | None = None,
        page_size: int = 100,
    ) -> list[JSON]:
        items: list[JSON] = []
        cursor: str | None = None
        for _ in range(50):
            params = _without_none(
                {
                    "agent_id": agent_id,
                    "user_id": user_id,
                    "call_start_after_unix": call_start_after_unix,
                    "page_size": page_size,
                    "cursor": cursor,
                }
            )
            body = await self._json("GET", "/v1/convai/conversations", params=params)
            items.extend(body.get("conversations") or [])
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                break
        return items

    # ---- workspace webhooks --------------------------------------------------------------------

    async def create_workspace_webhook(self, name: str, webhook_url: str) -> JSON:
        """Answers `{webhook_id, webhook_secret}`; the secret signs every delivery (HMAC)."""
        body = {"settings": {"auth_type": "hmac", "name": name, "webhook_url": webhook_url}}
        return await self._json("POST", "/v1/workspace/webhooks", json=body)

    async def update_workspace_webhook(
        self, webhook_id: str, *, name: str, is_disabled: bool = False, retry_enabled: bool | None = None
    ) -> None:
        """`PATCH /v1/workspace/webhooks/{id}` (`name` and `is_disabled` are required there);
        `retry_enabled` has ElevenLabs retry a failed post_call_transcription delivery on a 5xx,
        429 or 408: immediately, then after 30 s, 2, 8 and 30 min (their Webhooks docs, "Retries";
        off by default)."""
        body: JSON = {"name": name, "is_disabled": is_disabled}
        if retry_enabled is not None:
            body["retry_enabled"] = retry_enabled
        await self._json("PATCH", f"/v1/workspace/webhooks/{webhook_id}", json=body)

    async def list_workspace_webhooks(self) -> list[JSON]:
        """Every workspace webhook: `{webhook_id, name, webhook_url, created_at_unix, usage, ...}`
        (never the secret)."""
        body = await self._json("GET", "/v1/workspace/webhooks", params={"include_usages": "true"})
        webhooks = body.get("webhooks", [])
        return list(webhooks) if isinstance(webhooks, list) else []

    async def delete_workspace_webhook(self, webhook_id: str) -> None:
        await self.request("DELETE", f"/v1/workspace/webhooks/{webhook_id}")

    async def update_convai_settings(self, body: JSON) -> JSON:
        return await self._json("PATCH", "/v1/convai/settings", json=body)

    # ---- helpers -------------------------------------------------------------------------------

    async def _list(self, path: str, field: str, *, search: str | None, page_size: int) -> list[JSON]:
        """Every page of a cursor-paginated list (bounded: recovery lists are filtered by search)."""
        items: list[JSON] = []
        cursor: str | None = None
        for _ in range(50):
            params = _without_none({"page_size": page_size, "search": search, "cursor": cursor})
            body = await self._json("GET", path, params=params)
            items.extend(body.get(field) or [])
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                break
        return items


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
