"""Prometheus metrics of the tool-webhooks HTTP side."""

from __future__ import annotations

from prometheus_client import Counter

POST_CALL_WEBHOOKS = Counter(
    "switchboard_post_call_webhooks_total",
    "ElevenLabs post-call webhooks received, by outcome.",
    ["outcome"],
)

TOOL_CALLS = Counter(
    "switchboard_tool_calls_total",
    "Mid-call tool calls, by tool and outcome.",
    ["tool", "outcome"],
)
