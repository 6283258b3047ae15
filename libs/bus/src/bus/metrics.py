"""Prometheus metrics for bus handlers, the outbox relay, retention and HTTP."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

HANDLED = Counter(
    "switchboard_messages_handled_total",
    "Bus messages handled, by topic, message type and outcome.",
    ["service", "topic", "type", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "switchboard_message_handle_seconds",
    "Time to handle one bus message (including retries).",
    ["service", "topic"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DEAD_LETTERED = Counter(
    "switchboard_messages_dead_lettered_total", "Messages sent to a dead-letter topic.", ["service", "topic"]
)
RELAYED = Counter("switchboard_outbox_relayed_total", "Outbox rows published to Kafka.", ["service", "topic"])
PRUNED = Counter(
    "switchboard_rows_pruned_total",
    "Rows deleted because they outlived their retention.",
    ["service", "table"],
)
