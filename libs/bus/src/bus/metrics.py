"""Prometheus metrics for bus handlers, the outbox relay, retention and HTTP."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
BATCH_FALLBACKS = Counter(
    "switchboard_message_batch_fallbacks_total",
    "Batches whose shared transaction was rolled back because a handler failed; their messages "
    "were then handled one by one.",
    ["service", "topic"],
)
DEAD_LETTERED = Counter(
    "switchboard_messages_dead_lettered_total",
    "Messages sent to a dead-letter topic, by the topic they came from and why (x-reason).",
    ["service", "topic", "reason"],
)
RELAYED = Counter("switchboard_outbox_relayed_total", "Outbox rows published to Kafka.", ["service", "topic"])
RELAY_FAILED = Counter(
    "switchboard_outbox_relay_failures_total",
    "Outbox publish failures: transient (the row is retried) or permanent (the row is dropped and "
    "its operation failed).",
    ["service", "topic", "kind"],
)
RELAY_FETCHES = Counter(
    "switchboard_outbox_fetches_total",
    "Claims the outbox relay ran (one statement each), by whether they found rows: an idle "
    "relay should run few `empty` ones (woken only by its own outbox's NOTIFY, or its backoff poll); "
    "`skipped`: claims not run because nothing was announced since one that found every due row "
    "(bus.claims).",
    ["service", "result"],
)
DB_STATEMENTS = Counter(
    "switchboard_db_statements_total",
    "SQL statements the service sent to PostgreSQL (its outbox relay's included).",
    ["service"],
)
DB_TRANSACTIONS = Counter(
    "switchboard_db_transactions_total",
    "Database transactions the service ended, by commit or rollback (a rollback is also how a "
    "read-only unit of work ends).",
    ["service", "outcome"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "switchboard_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not yet published to Kafka (0 when the outbox is empty).",
    ["service"],
)
PRUNED = Counter(
    "switchboard_rows_pruned_total",
    "Rows deleted because they outlived their retention.",
    ["service", "table"],
)
