"""Read models the gateway projects from events, plus operations and staged uploads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.tables import make_bus_tables

SCHEMA = "gateway"
metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)
outbox, inbox = make_bus_tables(metadata)


class Base(DeclarativeBase):
    metadata = metadata


class _Projected:
    """Rows projected from events. `position` orders listings (keyset pagination);
    `last_event_at` makes projection order-insensitive; deletes are tombstones so a late
    event cannot resurrect a deleted resource."""

    position: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[bool] = mapped_column(default=False)


class Tool(_Projected, Base):
    __tablename__ = "tools"

    tool_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    type: Mapped[str] = mapped_column(String(50))
    purpose: Mapped[str] = mapped_column(String(50))
    tool_config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)


class KnowledgeDocument(_Projected, Base):
    __tablename__ = "knowledge_documents"

    document_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000))
    source_type: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    folder_path: Mapped[list[Any] | None] = mapped_column(JSONB, nullable=True)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)


class Agent(_Projected, Base):
    __tablename__ = "agents"

    agent_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000))
    conversation_config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    platform_settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    tags: Mapped[list[str]] = mapped_column(JSONB)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)


class Operation(Base):
    """A write accepted by the gateway: pending until its outcome event is projected."""

    __tablename__ = "operations"

    operation_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    command_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))  # pending | succeeded | failed
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Upload(Base):
    """A staged knowledge-base file (claim check): Kafka carries its URL, not its bytes."""

    __tablename__ = "uploads"

    upload_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PhoneNumber(_Projected, Base):
    __tablename__ = "phone_numbers"

    phone_number_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(500))
    provider: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    supports_inbound: Mapped[bool] = mapped_column(default=True)
    supports_outbound: Mapped[bool] = mapped_column(default=True)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)


class Call(_Projected, Base):
    """One placed call (a conversation). Campaign attempts are calls too."""

    __tablename__ = "calls"

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    call_sid: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sip_call_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    agent_id: Mapped[str] = mapped_column(String(200), index=True)
    phone_number_id: Mapped[str] = mapped_column(String(200), index=True)
    to_number: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), index=True)
    duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    ecommerce_enabled: Mapped[bool] = mapped_column(default=False)
    campaign_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    recipient_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Placed outside the platform's quiet hours on the request's `override_quiet_hours`.
    quiet_hours_overridden: Mapped[bool] = mapped_column(default=False, server_default="false")
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    placed_at_unix: Mapped[int] = mapped_column(BigInteger)
    ended_at_unix: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    # A recipient's attempts, in order (results of a campaign, page by page).
    __table_args__ = (Index("ix_calls_campaign_recipient_attempt", "campaign_id", "recipient_id", "attempt"),)


class CallTranscriptPart(Base):
    """One part of a call's transcript (`PostCallTranscriptPart`). Apart from `calls`: a part may
    arrive before its call is projected, and a whole transcript can be megabytes. Parts are
    immutable (a delivery is published once), so a redelivered part changes nothing."""

    __tablename__ = "call_transcript_parts"

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    part_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_count: Mapped[int] = mapped_column(Integer)
    turn_count: Mapped[int] = mapped_column(Integer)
    transcript_json: Mapped[str] = mapped_column(Text)


class CallAnalysis(Base):
    """The post-call analysis ElevenLabs sent for a call (`post_call_transcription`'s `analysis`).
    Apart from `calls`, like the transcript: the webhook may be projected before its call."""

    __tablename__ = "call_analyses"

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    call_successful: Mapped[str | None] = mapped_column(String(20), nullable=True)
    transcript_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    # id -> value
    data_collection_results: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # id -> {result, rationale}
    evaluation_criteria_results: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    termination_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_timestamp: Mapped[int] = mapped_column(BigInteger)


class CustomerSession(_Projected, Base):
    __tablename__ = "customer_sessions"

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    email: Mapped[str | None] = mapped_column(String(500), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)


class IdempotencyKey(Base):
    """The first answer to a POST carrying an Idempotency-Key, replayed for
    GATEWAY_IDEMPOTENCY_RETENTION_HOURS (24 h) from `created_at`, then deleted."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # sha256(api key + header value)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))  # in_progress | done | released (after a 5xx)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmailTemplate(_Projected, Base):
    __tablename__ = "email_templates"

    template_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    subject_template: Mapped[str] = mapped_column(Text)
    body_template: Mapped[str] = mapped_column(Text)
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    tool_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[str] = mapped_column(String(64))


class Email(_Projected, Base):
    """An e-mail the agent asked for, sent or failed (beyond the spec: GET /api/v1/emails)."""

    __tablename__ = "emails"

    email_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the send command's id
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    template_id: Mapped[str] = mapped_column(String(200))
    to_email: Mapped[str] = mapped_column(String(500))
    from_email: Mapped[str | None] = mapped_column(String(500), nullable=True)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)  # sent | failed
    transport: Mapped[str | None] = mapped_column(String(20), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    permanent: Mapped[bool | None] = mapped_column(nullable=True)
    at_unix: Mapped[int] = mapped_column(BigInteger)


class Campaign(_Projected, Base):
    __tablename__ = "campaigns"

    campaign_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000))
    agent_id: Mapped[str] = mapped_column(String(200))
    phone_number_id: Mapped[str] = mapped_column(String(200))
    phone_provider: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)
    scheduled_time_unix: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    timezone: Mapped[str | None] = mapped_column(String(100), nullable=True)
    retry_count: Mapped[int] = mapped_column(Integer)
    total_calls_scheduled: Mapped[int] = mapped_column(Integer)
    total_calls_dispatched: Mapped[int] = mapped_column(Integer)
    total_calls_finished: Mapped[int] = mapped_column(Integer)
    last_updated_at_unix: Mapped[int] = mapped_column(BigInteger)
    # The caller-ID pool with each number's dials and answer rate (contracts CallerIdStats).
    phone_numbers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    max_total_minutes: Mapped[float | None] = mapped_column(Float, nullable=True)
    call_minutes_used: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class CampaignRecipient(Base):
    """One recipient of a campaign. Rows are written when the gateway submits (scheduled) and
    updated from recipient events, which carry their position so listing order is stable."""

    __tablename__ = "campaign_recipients"

    campaign_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    to_number: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duration_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    # Zones the calling window applies in, and why a recipient failed or was skipped: from the
    # recipient's events (empty / null until the campaigns service reports it).
    time_zones: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A `scheduled` recipient held back: why (quiet_hours, calling_window, frequency_cap,
    # campaign_daily_cap; contracts.campaigns.CampaignRecipientUpdated) and until when.
    waiting_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    next_attempt_at_unix: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A callback the callee asked for during a call: the time asked, and as they said it.
    callback_at_unix: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    callback_requested: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # As submitted (written by the gateway at submission; recipient events never change them).
    name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    email: Mapped[str | None] = mapped_column(String(500), nullable=True)
    dynamic_variables: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        Index("ix_campaign_recipients_campaign_position", "campaign_id", "position"),
        Index("ix_campaign_recipients_campaign_outcome", "campaign_id", "outcome"),
    )


class CampaignChange(Base):
    """The ordered log of what the projection changed in campaigns and their recipients, written in
    the projection's transaction: the live progress streams (`/batch-calling/events`) read it by
    `change_id > Last-Event-ID`. Inserts are serialised (`Changes.append`), so ids become visible
    in order and a reader never skips one still being committed. Pruned after
    GATEWAY_CHANGE_RETENTION_HOURS."""

    __tablename__ = "campaign_changes"

    change_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # campaign | recipient
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_campaign_changes_campaign_change", "campaign_id", "change_id"),)


class DoNotCall(_Projected, Base):
    __tablename__ = "do_not_call"

    phone_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    added_at_unix: Mapped[int] = mapped_column(BigInteger)
    # `api` or `voice` (the callee opted out during `conversation_id`); null for older rows.
    source: Mapped[str | None] = mapped_column(String(20), nullable=True)
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ApiKey(Base):
    """A stored API key (`gateway.access`): only the SHA-256 of the key is kept. A revoked key stays
    listed with its `revoked_at`; `last_used_at` is written at most once per
    GATEWAY_API_KEY_LAST_USED_RESOLUTION_S, not on every request."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(20))  # read | operator | admin
    # Per-key override of GATEWAY_RATE_LIMIT_PER_S / _BURST; null: the settings' defaults.
    rate_limit_per_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RateBucket(Base):
    """One token bucket per API key (`repository.RateBuckets`). UNLOGGED: a write per request
    without WAL; a PostgreSQL crash empties the table, so buckets start full again."""

    __tablename__ = "rate_buckets"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    bucket: Mapped[str] = mapped_column(String(64), primary_key=True)  # key id, or env:<digest>
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Webhook(_Projected, Base):
    """A webhook subscription as the notifier reports it (beyond the spec: /api/v1/webhooks).
    Holds no secret: the signing secret is shown once, in the create answer, and kept only
    encrypted by the notifier."""

    __tablename__ = "webhooks"

    webhook_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(JSONB)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since_unix: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)


class WebhookDelivery(Base):
    """One event to one webhook, from the notifier's `webhook_delivery.updated` events."""

    __tablename__ = "webhook_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at_unix: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)
    last_event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_position", "webhook_id", "position"),
        # Retention (`WebhookDeliveries.prune_finished`).
        Index("ix_webhook_deliveries_last_event_at", "last_event_at"),
    )


class WebhookDeliveryAttempt(Base):
    """One HTTP attempt of a delivery and what the receiver answered."""

    __tablename__ = "webhook_delivery_attempts"

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    manual: Mapped[bool] = mapped_column(default=False)
