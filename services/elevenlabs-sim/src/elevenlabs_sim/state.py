"""The single in-memory state object behind every router.

Everything lives in one ``SimState`` so that ``POST /_sim/reset`` can wipe it in one place and
later resources (phone numbers, conversations, ...) only need one more store here.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

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
        self.convai_settings: JSON = default_convai_settings()
        self.request_log: list[JSON] = []
        self.faults: list[Fault] = []

    def reset(self) -> None:
        """Forget every resource, logged request and queued fault; keep settings and rng."""
        self.tools = Store()
        self.secrets = Store()
        self.knowledge_base = Store()
        self.agents = Store()
        self.workspace_webhooks = Store()
        self.convai_settings = default_convai_settings()
        self.request_log = []
        self.faults = []

    def counts(self) -> dict[str, int]:
        return {
            "tools": len(self.tools),
            "secrets": len(self.secrets),
            "knowledge_base": len(self.knowledge_base),
            "agents": len(self.agents),
            "workspace_webhooks": len(self.workspace_webhooks),
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

    # records -------------------------------------------------------------------------------

    def add(self, store: Store, item_id: str, data: JSON) -> Record:
        self._seq += 1
        ts = now_unix()
        record = Record(id=item_id, seq=self._seq, created_at=ts, updated_at=ts, data=data)
        store.items[item_id] = record
        return record
