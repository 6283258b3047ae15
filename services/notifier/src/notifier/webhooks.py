"""Rules of webhook deliveries to the customer's systems (no I/O; clocks and randomness passed in).

- Which bus events become which webhook events, with a stable id a receiver deduplicates on.
- The signature: `Switchboard-Signature: t=<unix seconds>,v1=<hex>`, hex = HMAC-SHA256 under the
  subscription's signing secret (its UTF-8 bytes) of `"<t>.<raw body>"` — the scheme of
  ElevenLabs' `ElevenLabs-Signature` (`v0`) and Stripe's `Stripe-Signature` (`v1`).
- The retry schedule: exponential backoff with jitter, honouring Retry-After, within a window.
- The disable rule: a subscription whose attempts keep failing is disabled (see `should_disable`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from contracts.base import Event
from contracts.campaigns import (
    FINAL_CAMPAIGN_STATUSES,
    FINAL_RECIPIENT_STATUSES,
    CampaignRecipientsClosed,
    CampaignRecipientsStaged,
    CampaignRecipientUpdated,
    CampaignSnapshot,
    CampaignUpdated,
)
from contracts.telephony import FINAL_CALL_STATUSES, CallStatusChanged

SIGNATURE_HEADER = "Switchboard-Signature"
SIGNATURE_SCHEME = "v1"
EXCERPT_CHARS = 500

_EVENT_NAMESPACE = uuid.UUID("3b0f8a52-7e0c-4f7e-9d1a-5c2b7f0e6a41")
_DELIVERY_NAMESPACE = uuid.UUID("a7d4c1e9-2b3f-4c6d-8e5f-1a2b3c4d5e6f")


# ---- signing -------------------------------------------------------------------------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret` (UTF-8)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The `Switchboard-Signature` value: `t=<unix seconds>,v1=<hex>`."""
    return f"t={timestamp},{SIGNATURE_SCHEME}={signature(secret, timestamp, body)}"


def verify_signature(secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: parse `t` and every `v1`, refuse a timestamp more than `tolerance_s`
    away from `now`, compare in constant time over the raw body. (The README shows the same.)"""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SIGNATURE_SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)


# ---- retries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `base_s` * 2^(n-1) after failed attempt n, at most `max_s`, each delay
    drawn uniformly from its upper half (jitter: many deliveries failing together spread out).
    A Retry-After (seconds) lengthens the delay, never beyond `max_s`. Retries stop when the next
    attempt would come later than `window_s` after the delivery was queued (or resent)."""

    base_s: float
    max_s: float
    window_s: float

    def delay_s(self, attempt: int, retry_after_s: float | None, rand: Callable[[], float]) -> float:
        """Delay after failed attempt `attempt` (1-based); `rand()` returns a float in [0, 1)."""
        exponential = min(self.max_s, self.base_s * 2.0 ** min(attempt - 1, 60))
        delay = exponential / 2 + exponential / 2 * rand()
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_s))
        return delay

    def next_attempt_at(
        self,
        attempt: int,
        now: datetime,
        retry_until: datetime,
        retry_after_s: float | None,
        rand: Callable[[], float],
    ) -> datetime | None:
        """When to try again after failed attempt `attempt`, or None to give up."""
        at = now + timedelta(seconds=self.delay_s(attempt, retry_after_s, rand))
        return at if at <= retry_until else None


def is_success(status_code: int) -> bool:
    return 200 <= status_code < 300


# ---- disabling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisableRule:
    """A subscription is disabled when at least `failures` attempts in a row failed AND the streak
    has lasted at least `after_s` (its first failure is that old) with no success in between.

    Both conditions: many failures in a short outage (a busy campaign against a receiver being
    redeployed) do not disable it, nor do a few failures spread over a quiet week."""

    failures: int
    after_s: float

    def should_disable(
        self, consecutive_failures: int, failing_since: datetime | None, now: datetime
    ) -> bool:
        if failing_since is None or consecutive_failures < self.failures:
            return False
        return (now - failing_since).total_seconds() >= self.after_s

    def reason(self) -> str:
        return (
            f"{self.failures} or more consecutive failed attempts over {_span(self.after_s)} with no success"
        )


def _span(seconds: float) -> str:
    """A duration as people write it: "12 h", "1.5 h", "10 min", "45 s" (not "0.0125 h")."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{round(seconds / size, 2):g} {unit}"
    return f"{round(seconds, 2):g} s"


# ---- bus events → webhook events -----------------------------------------------------------------


@dataclass(frozen=True)
class WebhookEvent:
    """One webhook event: `body` is the exact JSON every delivery of it sends."""

    event_id: str
    event_type: str
    occurred_at: datetime
    body: str


def event_id(event_type: str, *natural_key: str) -> str:
    """`evt_<hex>`: the same fact (however often its bus message is redelivered, or re-emitted by
    another path) always gets the same id."""
    return "evt_" + uuid.uuid5(_EVENT_NAMESPACE, "\x00".join((event_type, *natural_key))).hex


def delivery_id(subscription_id: str, event_id_: str) -> str:
    """`dlv_<hex>`: one delivery per subscription and event."""
    return "dlv_" + uuid.uuid5(_DELIVERY_NAMESPACE, f"{subscription_id}\x00{event_id_}").hex


def _webhook(event_type: str, key: tuple[str, ...], at: datetime, data: dict[str, Any]) -> WebhookEvent:
    eid = event_id(event_type, *key)
    body = {"id": eid, "type": event_type, "occurred_at_unix": int(at.timestamp()), "data": data}
    return WebhookEvent(eid, event_type, at, json.dumps(body, separators=(",", ":"), ensure_ascii=False))


def call_finished(event: CallStatusChanged) -> WebhookEvent | None:
    """`call.finished` for a call's final status (telephony emits it once per call)."""
    if event.status not in FINAL_CALL_STATUSES:
        return None
    data = {
        "conversation_id": event.conversation_id,
        "status": event.status,
        "to_number": event.to_number,
        "agent_id": event.agent_id,
        "phone_number_id": event.phone_number_id,
        "duration_seconds": event.duration_seconds,
        "outcome": event.outcome,
        "summary": event.summary,
        "reason": event.reason,
        "started_at_unix": event.started_at_unix,
        "ended_at_unix": event.ended_at_unix,
        "campaign_id": event.campaign_id,
        "recipient_id": event.recipient_id,
        "attempt": event.attempt,
    }
    return _webhook("call.finished", (event.conversation_id,), event.occurred_at, data)


def _recipient_finished(
    campaign_id: str, at: datetime, data: dict[str, Any], extra: tuple[str, ...] = ()
) -> WebhookEvent:
    """`campaign.recipient.finished`, keyed by (campaign, recipient, `extra`): a recipient is final
    once, so whichever event announces it (one by one or in bulk, or both) gives the same event id;
    `extra` keys what happens after that (an opt-out, a callback's attempt)."""
    body = {"campaign_id": campaign_id} | data
    key = (campaign_id, data["recipient_id"], *extra)
    return _webhook("campaign.recipient.finished", key, at, body)


def recipient_finished(event: CampaignRecipientUpdated) -> WebhookEvent | None:
    """`campaign.recipient.finished` when a recipient reaches a final status (no retry to come)."""
    if event.status not in FINAL_RECIPIENT_STATUSES:
        return None
    data = {
        "recipient_id": event.recipient_id,
        "position": event.position,
        "to_number": event.to_number,
        "status": event.status,
        "conversation_id": event.conversation_id,
        "duration_seconds": event.duration_seconds,
        "outcome": event.outcome,
        "retry_count": event.retry_count,
        "reason": event.reason,
        "time_zones": event.time_zones,
    }
    # Once per recipient, except what a callee asked for after their call had finished it: an
    # opt-out, or a callback's extra attempt, is news of its own (an id of its own).
    extra: tuple[str, ...] = ()
    if event.status == "opted_out":
        extra = ("opted_out",)
    elif event.callback_at_unix is not None:
        extra = ("callback", str(event.callback_at_unix))
    return _recipient_finished(event.campaign_id, event.occurred_at, data, extra)


def recipients_closed(event: CampaignRecipientsClosed) -> list[WebhookEvent]:
    """One `campaign.recipient.finished` per recipient a cancel (or a failed campaign) closed in bulk."""
    if event.status not in FINAL_RECIPIENT_STATUSES:
        return []
    return [
        _recipient_finished(
            event.campaign_id,
            event.occurred_at,
            {
                "recipient_id": r.recipient_id,
                "position": r.position,
                "to_number": r.to_number,
                "status": event.status,
                "conversation_id": r.conversation_id,
                "duration_seconds": r.duration_seconds,
                "outcome": r.outcome,
                "retry_count": r.retry_count,
                "reason": event.reason,
                "time_zones": r.time_zones,
            },
        )
        for r in event.recipients
    ]


def recipients_staged(event: CampaignRecipientsStaged) -> list[WebhookEvent]:
    """One `campaign.recipient.finished` per recipient already final when staged (rejected on
    arrival, or closed before its campaign was staged)."""
    return [
        _recipient_finished(
            event.campaign_id,
            event.occurred_at,
            {
                "recipient_id": r.recipient_id,
                "position": r.position,
                "to_number": r.to_number,
                "status": r.status,
                "conversation_id": None,
                "duration_seconds": None,
                "outcome": None,
                "retry_count": 0,
                "reason": r.reason,
                "time_zones": r.time_zones,
            },
        )
        for r in event.recipients
        if r.status in FINAL_RECIPIENT_STATUSES
    ]


def _campaign_data(c: CampaignSnapshot, previous_status: str | None) -> dict[str, Any]:
    return {
        "campaign_id": c.campaign_id,
        "name": c.name,
        "status": c.status,
        "previous_status": previous_status,
        "status_reason": c.status_reason,
        "agent_id": c.agent_id,
        "phone_number_id": c.phone_number_id,
        "total_calls_scheduled": c.total_calls_scheduled,
        "total_calls_dispatched": c.total_calls_dispatched,
        "total_calls_finished": c.total_calls_finished,
    }


def campaign_changes(event: CampaignUpdated, previous_status: str | None) -> list[WebhookEvent]:
    """`campaign.status_changed` when the status differs from the last one seen (`previous_status`,
    None for a campaign never seen: its first status counts as a change), and `campaign.finished`
    when it becomes completed, failed or cancelled."""
    c = event.campaign
    if c.status == previous_status:
        return []
    data = _campaign_data(c, previous_status)
    out = [_webhook("campaign.status_changed", (event.message_id,), event.occurred_at, data)]
    if c.status in FINAL_CAMPAIGN_STATUSES:
        out.append(_webhook("campaign.finished", (c.campaign_id,), event.occurred_at, data))
    return out


def webhook_events(event: Event, previous_campaign_status: str | None = None) -> list[WebhookEvent]:
    """The webhook events a bus event gives (none for most)."""
    match event:
        case CallStatusChanged():
            return [e for e in [call_finished(event)] if e]
        case CampaignRecipientUpdated():
            return [e for e in [recipient_finished(event)] if e]
        case CampaignRecipientsClosed():
            return recipients_closed(event)
        case CampaignRecipientsStaged():
            return recipients_staged(event)
        case CampaignUpdated():
            return campaign_changes(event, previous_campaign_status)
    return []


def excerpt(content: bytes) -> str:
    """The start of an answer's body, as text (undecodable bytes replaced)."""
    return content[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")[:EXCERPT_CHARS]
