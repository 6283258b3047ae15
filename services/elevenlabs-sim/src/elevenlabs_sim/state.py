"""The single in-memory state object behind every router.

Everything lives in one ``SimState`` so that ``POST /_sim/reset`` can wipe it in one place and
later resources (phone numbers, conversations, ...) only need one more store here.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from elevenlabs_sim.settings import SimSettings

# Upstream ids such as ``agent_3701k3ttaq12ewp8b7qv5rfyszkz`` use this lowercase alphabet
# (no i, l, o, u) after a four-digit prefix and a "k".
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_KB_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

JSON = dict[str, Any]


def now_unix() -> int:
    return int(time.time())


@dataclass
class Record:
    """One stored resource. ``seq`` breaks ties between items created in the same second."""

    id: str
    seq: int
    created_at: int
    updated_at: int
    data: JSON


@dataclass
class Fault:
    method: str | None
    path_regex: re.Pattern[str]
    status: int | None
    remaining: int
    retry_after: float | None
    delay_ms: int | None
    body: Any
    # "after": the handler runs first (the resource is created), then the delay and the fault
    # replace its answer: the "did my POST take effect?" case of a lost or failed response.
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_regex.search(path) is not None

    def describe(self) -> JSON:
        return {
            "method": self.method,
            "path_regex": self.path_regex.pattern,
            "status": self.status,
            "remaining": self.remaining,
            "retry_after": self.retry_after,
            "delay_ms": self.delay_ms,
            "body": self.body,
            "after": self.after,
        }


@dataclass
class Store:
    """Insertion-ordered map of records of one resource type."""

    items: dict[str, Record] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: str) -> Record | None:
        return self.items.get(item_id)

    def values(self) -> list[Record]:
        return list(self.items.values())

    def delete(self, item_id: str) -> Record | None:
        return self.items.pop(item_id, None)


def default_convai_settings() -> JSON:
    return {
        "conversation_initiation_client_data_webhook": None,
        "webhooks": {
            "post_call_webhook_id": None,
            "events": [],
            "transcript_format": "json",
            "send_audio": False,
        },
        "can_use_mcp_servers": False,
        "rag_retention_period_days": 10,
        "conversation_embedding_retention_days": None,
        "default_livekit_stack": "standard",
    }


@dataclass
class RuntimeConfig:
    """Call-simulation knobs: start from the settings, changeable at runtime via ``POST /_sim/config``."""

    call_duration_ms: int
    ring_ms: int
    processing_ms: int
    max_concurrent_calls: int
    webhook_retries: int
    refuse_number_suffix: str
    webhook_retry_delays_ms: list[int] = field(default_factory=list)
    answered_outcome: str = "appointment_confirmed"
    # Direct webhook target, bypassing workspace registration (None = use the workspace webhook).
    webhook_url: str | None = None
    webhook_secret: str | None = None
    webhook_events: list[str] | None = None
    # Webhook tools of the agent are called during answered calls (``tool_invocation.py``).
    invoke_tools: bool = True
    # Forced values of LLM-filled tool parameters: "<param>" or "<tool name>.<param>" → value.
    tool_value_overrides: dict[str, Any] = field(default_factory=dict)
    # A long call: this many extra turns (about 2 KB each) in an answered call's transcript.
    transcript_padding_turns: int = 0
    # Size of the MP3 whose base64 is post_call_audio's `full_audio` (0: a few bytes).
    audio_bytes: int = 0
    # Carrier refusals of a dial (200 ``success: false`` with this message), keyed by the calling
    # ``agent_phone_number_id`` (e.g. bad Twilio credentials) or the ``to_number``.
    dial_refusals: dict[str, str] = field(default_factory=dict)
    # Calls to these numbers ring, then fail with ``failure_reason: "unknown"`` and this carrier
    # answer in the ``call_initiation_failure`` metadata: {"sip_status_code": 486, "call_status": "failed"}.
    carrier_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # What the callee asks for, by dialled number: [{"tool": <tool name>, "says": <words>,
    # "params": {<param>: <value>}, "once": bool}] ("once": only the next call asks). A tool named here is called only during calls to the numbers
    # that ask for it (after a user turn with their words, with those parameter values); tools
    # named nowhere are called in every answered call, as before.
    callee_requests: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Tool names called only when a callee asks for them (as if named in `callee_requests`).
    tools_on_request: list[str] = field(default_factory=list)
    # Post-call analysis values by dialled number ("*": every call): data-collection id -> value,
    # over the simulated ones (`outcome` included).
    data_collection_values: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: SimSettings) -> RuntimeConfig:
        return cls(
            call_duration_ms=settings.call_duration_ms,
            ring_ms=settings.ring_ms,
            processing_ms=settings.processing_ms,
            max_concurrent_calls=settings.max_concurrent_calls,
            webhook_retries=settings.webhook_retries,
            refuse_number_suffix=settings.refuse_number_suffix,
            webhook_retry_delays_ms=list(settings.webhook_retry_delays_ms),
        )

    def describe(self) -> JSON:
        return copy.deepcopy(self.__dict__)


@dataclass
class Delivery:
    """One sent (or attempted) webhook; kept per conversation so it can be replayed byte for byte."""

    conversation_id: str
    type: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CallTracker:
    """Simulated calls, their concurrency, and the webhook deliveries they caused."""

    calls: dict[str, JSON] = field(default_factory=dict)  # conversation_id -> /_sim/calls entry
    refusals: list[JSON] = field(default_factory=list)  # dials answered success:false or 429
    dials_by_number: dict[str, int] = field(default_factory=dict)
    in_progress: int = 0
    max_concurrent_observed: int = 0
    deliveries: list[JSON] = field(default_factory=list)
    tool_calls: list[JSON] = field(default_factory=list)  # /_sim/tool-calls entries
    last_delivery: dict[str, list[Delivery]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """One pooled client for webhooks and tool calls: a client per request built a fresh TLS
        context each time, which was 85 % of the simulator's CPU under a campaign."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0)
        return self._http

    async def close_http(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def cancel_tasks(self) -> list[asyncio.Task[None]]:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        self.tasks.clear()
        return tasks


class SimState:
    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        # Seeded so that ids and injected failures repeat across runs when a seed is set.
        self.rng = random.Random(settings.seed)  # noqa: S311 - not used for security
        self._seq = 0
        self.tools = Store()
        self.secrets = Store()
        self.knowledge_base = Store()
        self.agents = Store()
        self.workspace_webhooks = Store()
        self.phone_numbers = Store()
        self.conversations = Store()
        self.convai_settings: JSON = default_convai_settings()
        self.request_log: list[JSON] = []
        self.faults: list[Fault] = []
        self.config = RuntimeConfig.from_settings(settings)
        self.calls = CallTracker()

    def reset(self) -> None:
        """Forget every resource, logged request, queued fault, call and runtime config override;
        cancel running call lifecycles; keep settings and rng."""
        self.tools = Store()
        self.secrets = Store()
        self.knowledge_base = Store()
        self.agents = Store()
        self.workspace_webhooks = Store()
        self.phone_numbers = Store()
        self.conversations = Store()
        self.convai_settings = default_convai_settings()
        self.request_log = []
        self.faults = []
        self.config = RuntimeConfig.from_settings(self.settings)
        self.calls.cancel_tasks()
        fresh = CallTracker()
        fresh._http = self.calls._http  # the pooled client outlives a reset; shutdown closes it
        self.calls = fresh

    def counts(self) -> dict[str, int]:
        return {
            "tools": len(self.tools),
            "secrets": len(self.secrets),
            "knowledge_base": len(self.knowledge_base),
            "agents": len(self.agents),
            "workspace_webhooks": len(self.workspace_webhooks),
            "phone_numbers": len(self.phone_numbers),
            "conversations": len(self.conversations),
            "requests": len(self.request_log),
            "faults": sum(f.remaining for f in self.faults),
        }

    # ids -----------------------------------------------------------------------------------

    def _token(self, alphabet: str, length: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(length))

    def new_id(self, prefix: str) -> str:
        """An id in the upstream style, e.g. ``tool_4801k...`` (prefix, 4 digits, "k", 23 chars)."""
        digits = "".join(self.rng.choice("0123456789") for _ in range(4))
        return f"{prefix}_{digits}k{self._token(_ID_ALPHABET, 23)}"

    def new_kb_id(self) -> str:
        # Knowledge-base documents use bare 20-char ids like ``21m00Tcm4TlvDq8ikWAM``.
        return self._token(_KB_ALPHABET, 20)

    def new_webhook_secret(self) -> str:
        return "wsec_" + self._token("0123456789abcdef", 64)

    def new_webhook_id(self) -> str:
        return self._token("0123456789abcdef", 32)

    def new_call_sid(self) -> str:
        return "CA" + self._token("0123456789abcdef", 32)

    def new_tool_request_id(self) -> str:
        return "toolu_" + self._token(_KB_ALPHABET, 24)

    def new_sip_call_id(self) -> str:
        return "SCL_" + self._token(_KB_ALPHABET, 12)

    # records -------------------------------------------------------------------------------

    def add(self, store: Store, item_id: str, data: JSON) -> Record:
        self._seq += 1
        ts = now_unix()
        record = Record(id=item_id, seq=self._seq, created_at=ts, updated_at=ts, data=data)
        store.items[item_id] = record
        return record
