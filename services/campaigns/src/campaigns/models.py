"""Tables of the `campaigns` schema: campaigns (with counters), chunks, recipients, attempts,
the do-not-call list, the shared dispatch throttle, a phone-number provider projection, outbox
and inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.tables import make_bus_tables

SCHEMA = "campaigns"
CONSUMER = "campaigns"

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)


class Base(DeclarativeBase):
    metadata = metadata


outbox, inbox = make_bus_tables(metadata)


class Campaign(Base):
    """A campaign, its settings and its counters (kept in the same transaction as each change, so
    a snapshot never needs COUNT(*) over the recipients)."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_status", "status"),)

    campaign_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    agent_id: Mapped[str] = mapped_column(String(200))
    phone_number_id: Mapped[str] = mapped_column(String(200))
    phone_provider: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at_unix: Mapped[int] = mapped_column(BigInteger)
    scheduled_time_unix: Mapped[int | None] = mapped_column(BigInteger)
    timezone: Mapped[str | None] = mapped_column(String(100))
    retry_count: Mapped[int] = mapped_column(Integer)
    retry_delays: Mapped[dict[str, Any]] = mapped_column(JSONB)
    concurrency_limit: Mapped[int | None] = mapped_column(Integer)
    calling_window: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    ecommerce_platform: Mapped[str | None] = mapped_column(String(20))
    ecommerce_credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    sender_email: Mapped[str | None] = mapped_column(String(500))
    recipient_chunks: Mapped[int] = mapped_column(Integer)
    # True once every chunk arrived and positions/ids were assigned.
    ready: Mapped[bool] = mapped_column(Boolean, default=False)
    total_scheduled: Mapped[int] = mapped_column(Integer, default=0)
    total_dispatched: Mapped[int] = mapped_column(Integer, default=0)
    total_finished: Mapped[int] = mapped_column(Integer, default=0)
    in_flight: Mapped[int] = mapped_column(Integer, default=0)
    # AIMD: effective concurrency after upstream 429s; NULL = the configured limit.
    throttle: Mapped[float | None] = mapped_column(Float)
    throttled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recent_outcomes: Mapped[str] = mapped_column(String(1000), default="")
    dials_accepted: Mapped[int] = mapped_column(Integer, default=0)
    fatal_dial_failures: Mapped[int] = mapped_column(Integer, default=0)
    # contracts.campaigns.AnalysisRule list: retries/endings decided by post-call analysis values.
    analysis_rules: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    # Carrier refusals blaming our configuration (credentials, trial account, permissions) in a row.
    configuration_refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # At most this many attempts per number per rolling 24 h in this campaign (None: only the
    # platform's CAMPAIGNS_MAX_ATTEMPTS_PER_NUMBER_24H across every campaign).
    max_daily_attempts_per_number: Mapped[int | None] = mapped_column(Integer)
    # Caller-ID pool besides `phone_number_id` (which is always in it, first) and each number's
    # optional cap of dials per rolling 24 h ({phone_number_id: cap}).
    phone_number_ids: Mapped[list[str] | None] = mapped_column(ARRAY(String(200)))
    phone_number_daily_caps: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    # Budget guard: the campaign's call minutes, the seconds its finished calls lasted, the longest.
    max_total_minutes: Mapped[float | None] = mapped_column(Float)
    call_seconds: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    longest_call_s: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress_dirty: Mapped[bool] = mapped_column(Boolean, default=False)
    last_emitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    correlation_id: Mapped[str | None] = mapped_column(String(200))


class CampaignChunk(Base):
    """Chunks received (the submit is chunk 0); duplicates are ignored by the primary key."""

    __tablename__ = "campaign_chunks"

    campaign_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    chunk_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Recipient(Base):
    """One person to call. `position`/`recipient_id` are assigned once all chunks are in."""

    __tablename__ = "recipients"
    __table_args__ = (
        UniqueConstraint("campaign_id", "chunk_index", "chunk_offset", name="uq_recipients_chunk_slot"),
        Index("ix_recipients_due", "campaign_id", "status", "position"),
        Index("ix_recipients_recipient_id", "campaign_id", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(200))
    chunk_index: Mapped[int] = mapped_column(Integer)
    chunk_offset: Mapped[int] = mapped_column(Integer)
    position: Mapped[int | None] = mapped_column(Integer)
    recipient_id: Mapped[str | None] = mapped_column(String(200))
    given_recipient_id: Mapped[str | None] = mapped_column(String(200))
    phone_number: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    dynamic_variables: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The zones the calling window applies in (domain.recipient_time_zones): one, or all of the
    # number's zones when the campaign's zone is not among them.
    time_zones: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dispatched: Mapped[bool] = mapped_column(Boolean, default=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    conversation_id: Mapped[str | None] = mapped_column(String(200))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(Text)
    # Why a `scheduled` recipient is held back (rules.WAITING_REASONS); None once dialled.
    waiting_reason: Mapped[str | None] = mapped_column(String(40))
    # The callee said "do not call me again" during the call in flight: it ends as `opted_out`.
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # A callback the callee asked for: when, as said, and whether its extra attempt is still owed.
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    callback_requested: Mapped[str | None] = mapped_column(Text)
    callback_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class FollowUpCall(Base):
    """A callback asked for during a single call (outside any campaign): one follow-up call with the
    same agent, number and variables, dialled once (`message_id` is its PlaceCall's)."""

    __tablename__ = "follow_up_calls"
    __table_args__ = (Index("ix_follow_up_calls_status_due_at", "status", "due_at"),)

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    to_number: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(200))
    phone_number_id: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(20))
    dynamic_variables: Mapped[dict[str, Any]] = mapped_column(JSONB)
    customer_name: Mapped[str | None] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(Text)
    requested: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))  # scheduled, placed, cancelled
    message_id: Mapped[str] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(200))


class Attempt(Base):
    """One PlaceCall (attempt n of a recipient); its message_id is telephony's idempotency key."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint(
            "campaign_id", "recipient_id", "attempt", name="uq_attempts_campaign_recipient_attempt"
        ),
        Index("ix_attempts_status_dialed_at", "status", "dialed_at"),
        # The rolling 24 h count of dials per number across campaigns (frequency cap).
        Index("ix_attempts_to_number_dialed_at", "to_number", "dialed_at"),
        # Dials per caller ID per rolling 24 h (a pool number's daily cap).
        Index("ix_attempts_phone_number_id_dialed_at", "phone_number_id", "dialed_at"),
    )

    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(200))
    recipient_id: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    recipient_pk: Mapped[int] = mapped_column(BigInteger)
    # The number dialled (E.164); NULL for attempts made before migration 0004.
    to_number: Mapped[str | None] = mapped_column(String(64))
    # The caller ID it was dialled from (the pool's choice); NULL before migration 0005.
    phone_number_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    conversation_id: Mapped[str | None] = mapped_column(String(200))
    call_status: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    dialed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CampaignNumber(Base):
    """Which recipient of a campaign may dial a number: claimed by its first dial. The primary key
    is the rule "one person, one call" per campaign, whatever path a duplicate took (chunks in any
    order, Kafka producers, campaigns that were in flight before duplicates were skipped)."""

    __tablename__ = "campaign_numbers"

    campaign_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient_pk: Mapped[int] = mapped_column(BigInteger)


class DoNotCall(Base):
    __tablename__ = "do_not_call"

    phone_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str | None] = mapped_column(Text)
    added_at_unix: Mapped[int] = mapped_column(BigInteger)


class DispatchState(Base):
    """Shared scheduler state (one row, name='global'): the account-wide AIMD throttle."""

    __tablename__ = "dispatch_state"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    throttle: Mapped[float | None] = mapped_column(Float)
    throttled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PhoneNumberProvider(Base):
    """Projection of telephony's phone-number events: provider of a number, for campaigns
    submitted without `phone_provider`, and its E.164 number (a caller-ID pool prefers a number of
    the recipient's country and area code; NULL for rows projected before migration 0005)."""

    __tablename__ = "phone_number_providers"

    phone_number_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    phone_number: Mapped[str | None] = mapped_column(String(64))


class CampaignCallerId(Base):
    """A campaign's caller-ID pool with per-number counters (kept in the transaction of each dial
    and outcome): dials made from the number, and how many of them a person answered (outcome
    `completed`)."""

    __tablename__ = "campaign_caller_ids"

    campaign_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    phone_number_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    dials: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
