"""Switchboard's one bus runtime: plumbing only (Kafka broker, outbox relay, inbox, retries,
dead letters, correlation ids, logs, metrics). No domain logic lives here."""
