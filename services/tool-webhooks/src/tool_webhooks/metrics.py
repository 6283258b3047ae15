"""Prometheus metrics of the tool-webhooks HTTP side."""

from __future__ import annotations

from prometheus_client import Counter

POST_CALL_WEBHOOKS = Counter(
    "switchboard_post_call_webhooks_total",
    "ElevenLabs post-call webhooks received, by outcome.",
    ["outcome"],
)
