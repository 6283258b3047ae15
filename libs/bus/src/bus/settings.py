"""Bus and database settings every service inherits into its own single settings class."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.limits import DEFAULT_MAX_MESSAGE_BYTES


class BusSettings(BaseSettings):
    """Environment variables shared by all services (no prefix: they are deployment-wide)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/switchboard", alias="DATABASE_URL"
    )
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field(default="", alias="KAFKA_TOPIC_PREFIX")
    # Real Kafka needs >= 6000 ms sessions; the embedded test broker wants ~2000/300 (see README).
    kafka_session_timeout_ms: int = Field(default=10_000, alias="KAFKA_SESSION_TIMEOUT_MS")
    kafka_heartbeat_interval_ms: int = Field(default=3_000, alias="KAFKA_HEARTBEAT_INTERVAL_MS")
    kafka_fetch_max_wait_ms: int = Field(default=100, alias="KAFKA_FETCH_MAX_WAIT_MS")
    kafka_enable_idempotence: bool = Field(default=True, alias="KAFKA_ENABLE_IDEMPOTENCE")
    kafka_topic_partitions: int = Field(default=4, ge=1, alias="KAFKA_TOPIC_PARTITIONS")
    kafka_replication_factor: int = Field(default=1, ge=1, alias="KAFKA_REPLICATION_FACTOR")
    bus_max_attempts: int = Field(default=4, ge=1, alias="BUS_MAX_ATTEMPTS")
    bus_retry_backoff_ms: int = Field(default=200, ge=0, alias="BUS_RETRY_BACKOFF_MS")
    # Inbox rows are what recognises a redelivery, so they must outlive anything that can still be
    # redelivered: Kafka keeps a topic 7 days by default (retention.ms), hence 14 days. 0 keeps all.
    bus_inbox_retention_hours: int = Field(default=336, ge=0, alias="BUS_INBOX_RETENTION_HOURS")
    # How often each service deletes rows past their retention (its inbox, and its own tables).
    bus_retention_interval_s: float = Field(default=3600, gt=0, alias="BUS_RETENTION_INTERVAL_S")
    # Largest message (serialized body and headers) a producer may write; bigger writes are refused
    # up front (bus.limits). Checked at start against the broker's message.max.bytes.
    bus_max_message_bytes: int = Field(
        default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024, alias="BUS_MAX_MESSAGE_BYTES"
    )
    # How often each service measures its oldest unrelayed outbox row (switchboard_outbox_oldest_age_seconds).
    bus_outbox_age_interval_s: float = Field(default=15.0, gt=0, alias="BUS_OUTBOX_AGE_INTERVAL_S")
    otel_traces_exporter: str = Field(
        default="none",
        alias="OTEL_TRACES_EXPORTER",
        description="none, otlp (OTEL_EXPORTER_OTLP_*) or console.",
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_json: bool = Field(default=True, alias="LOG_JSON")

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"
