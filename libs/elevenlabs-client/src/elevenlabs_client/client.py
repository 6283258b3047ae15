"""THE ElevenLabs client of Switchboard (provisioning, telephony and tool-webhooks use it).

Built on httpx rather than the official `elevenlabs` SDK on purpose: we need exact control of
retries (honouring `Retry-After` / `retry-after-ms`, bounded by our settings), one error type
mapped to the statuses our API reports, and correlation headers on every call.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as jsonlib
import math
import random
import time
from typing import Any

import httpx
import structlog

from bus.context import CORRELATION_HEADER, current_correlation_id

log = structlog.get_logger("elevenlabs")

_RETRY_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))
JSON = dict[str, Any]


class UpstreamError(Exception):
    """An ElevenLabs call failed; `status_code`/`error`/`detail` are what our caller should see."""

    def __init__(self, status_code: int, error: str, detail: str | None = None) -> None:
        super().__init__(f"{status_code} {error}: {detail}")
        self.status_code = status_code
        self.error = error
        self.detail = detail


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


def _detail_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return str(detail["message"])
    return detail if isinstance(detail, str) else jsonlib.dumps(detail)


def _map_error(response: httpx.Response, retry_after: float | None) -> UpstreamError:
    status = response.status_code
    if status == 404:
        return UpstreamError(404, "Not found", _detail_text(response))
    if status == 422:
        return UpstreamError(422, "Validation error", _detail_text(response))
    if status in (401, 403):
        return UpstreamError(401, "Authentication failed", _detail_text(response))
    if status == 429:
        return UpstreamError(429, "Rate limit exceeded", f"Retry after {math.ceil(retry_after or 0)} seconds")
    if status >= 500:
        return UpstreamError(502, "ElevenLabs unavailable", f"Upstream status {status}")
    return UpstreamError(status, "Upstream request failed", _detail_text(response))


class ElevenLabsClient:
    """Async ElevenLabs Agents Platform client; the `httpx.AsyncClient` is owned by the caller."""

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
        headers = {"xi-api-key": self.api_key, "Accept": "application/json"}
        if correlation_id := current_correlation_id():
            headers[CORRELATION_HEADER] = correlation_id
        url = f"{self.base_url}{path}"
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
                if attempt >= self.max_retries:
                    raise UpstreamError(502, "ElevenLabs unavailable", repr(exc)) from exc
                delay = self._backoff(attempt, None)
                log.warning("elevenlabs.retry", method=method, path=path, error=repr(exc), delay_s=delay)
            else:
                if response.is_success:
                    return response
                retry_after = retry_after_seconds(response.headers)
                if response.status_code not in _RETRY_STATUSES or attempt >= self.max_retries:
                    raise _map_error(response, retry_after)
                delay = self._backoff(attempt, retry_after)
                log.warning(
                    "elevenlabs.retry", method=method, path=path, status=response.status_code, delay_s=delay
                )
            attempt += 1
            await asyncio.sleep(delay)  # backoff before the next attempt

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

    async def delete_tool(self, tool_id: str) -> None:
        await self.request("DELETE", f"/v1/convai/tools/{tool_id}", params={"force": "true"})

    async def create_secret(self, name: str, value: str) -> JSON:
        return await self._json(
            "POST", "/v1/convai/secrets", json={"type": "new", "name": name, "value": value}
        )

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
