"""Bus and database settings every service inherits into its own single settings class."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bus.limits import DEFAULT_MAX_MESSAGE_BYTES


class BusSettings(BaseSettings):
    """Environment variables shared by all services (no prefix: they are deployment-wide)."""

    # hide_input_in_errors: a refused setting must not print the others' values (keys, passwords).
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/switchboard", alias="DATABASE_URL"
    )
    # Per process: idle connections kept, and extra ones opened under load (see bus.db.make_engine).
    database_pool_size: int = Field(default=10, ge=1, alias="DATABASE_POOL_SIZE")
    database_max_overflow: int = Field(default=10, ge=0, alias="DATABASE_MAX_OVERFLOW")
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field(default="", alias="KAFKA_TOPIC_PREFIX")
    # Managed Kafka: TLS and/or SASL for every client (bus.kafka_security builds the options).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, alias="KAFKA_SASL_MECHANISM"
    )
    kafka_sasl_username: str | None = Field(default=None, alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: SecretStr | None = Field(default=None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: str | None = Field(default=None, alias="KAFKA_SSL_CAFILE")
    kafka_ssl_certfile: str | None = Field(default=None, alias="KAFKA_SSL_CERTFILE")
    kafka_ssl_keyfile: str | None = Field(default=None, alias="KAFKA_SSL_KEYFILE")
    # Real Kafka needs >= 6000 ms sessions; the embedded test broker wants ~2000/300 (see README).
    kafka_session_timeout_ms: int = Field(default=10_000, alias="KAFKA_SESSION_TIMEOUT_MS")
    kafka_heartbeat_interval_ms: int = Field(default=3_000, alias="KAFKA_HEARTBEAT_INTERVAL_MS")
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=0, alias="KAFKA_FETCH_MAX_WAIT_MS")
    # A consumer that read nothing for KAFKA_IDLE_AFTER_MS fetches with this wait until a record
    # comes (bus.pacing); unset: always KAFKA_FETCH_MAX_WAIT_MS. For brokers that hold a fetch for
    # its whole wait (the embedded one); real Kafka answers when data arrives and needs none.
    kafka_idle_fetch_max_wait_ms: int | None = Field(default=None, ge=0, alias="KAFKA_IDLE_FETCH_MAX_WAIT_MS")
    kafka_idle_after_ms: int = Field(default=1000, ge=1, alias="KAFKA_IDLE_AFTER_MS")
    kafka_enable_idempotence: bool = Field(default=True, alias="KAFKA_ENABLE_IDEMPOTENCE")
    kafka_topic_partitions: int = Field(default=4, ge=1, alias="KAFKA_TOPIC_PARTITIONS")
    kafka_replication_factor: int = Field(default=1, ge=1, alias="KAFKA_REPLICATION_FACTOR")
    bus_max_attempts: int = Field(default=4, ge=1, alias="BUS_MAX_ATTEMPTS")
    bus_retry_backoff_ms: int = Field(default=200, ge=0, alias="BUS_RETRY_BACKOFF_MS")
    # Most messages a batch subscription (`Bus.subscribe(batch=True)`) handles in one transaction.
    bus_batch_max_records: int = Field(default=100, ge=1, alias="BUS_BATCH_MAX_RECORDS")
    # Most bytes of message bodies one such transaction takes: a run is cut before the message
    # that would pass it (one message always goes). Bulk events (1,000 recipients, ~0.2 MB) decode
    # to ~10x their size, so 100 of them in one transaction held ~100 MiB at once and the process
    # kept that heap for good; small events never reach the cap.
    bus_batch_max_bytes: int = Field(default=1_048_576, ge=1, alias="BUS_BATCH_MAX_BYTES")
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
    bus_relay_lease_s: float = Field(
        default=10.0,
        ge=3.0,  # faststream-outbox: at least twice the relay's longest idle wait (1 s) and a publish
        alias="BUS_RELAY_LEASE_S",
        description="How long an outbox relay owns the rows it fetched. Rows a relay leased and did "
        "not publish or delete before it died (SIGKILL, crash) or stalled are relayed by another "
        "relay once this runs out, after rows written later. faststream-outbox's default, 60 s, kept "
        "a killed service's last events a minute late.",
    )
    otel_traces_exporter: str = Field(
        default="none",
        alias="OTEL_TRACES_EXPORTER",
        description="none, otlp (OTEL_EXPORTER_OTLP_*) or console.",
    )
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_json: bool = Field(default=True, alias="LOG_JSON")

    @field_validator(
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes `${KAFKA_SASL_MECHANISM:-}` through as an empty string.
        return None if value == "" else value

    @model_validator(mode="after")
    def _kafka_security_is_coherent(self) -> Self:
        """Refuse at start a combination that would connect without what it names (credentials
        sent in clear to a TLS-less broker, SASL settings silently ignored, a key without its cert)."""
        protocol = self.kafka_security_protocol
        sasl = {
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        tls = {
            "KAFKA_SSL_CAFILE": self.kafka_ssl_cafile,
            "KAFKA_SSL_CERTFILE": self.kafka_ssl_certfile,
            "KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile,
        }
        if protocol.startswith("SASL_"):
            if missing := [name for name, value in sasl.items() if not value]:
                raise ValueError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        elif present := [name for name, value in sasl.items() if value]:
            raise ValueError(
                f"{', '.join(present)} set but KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL"
                " (use SASL_SSL, or SASL_PLAINTEXT)"
            )
        if not protocol.endswith("SSL") and (present := [name for name, value in tls.items() if value]):
            raise ValueError(
                f"{', '.join(present)} set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS"
                " (use SSL or SASL_SSL)"
            )
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (client certificate)")
        return self

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"
