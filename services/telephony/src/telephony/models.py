"""Tables of the `telephony` schema: the upstream-command ledger, phone numbers, calls, customer
sessions, outbox and inbox. No table holds a secret in clear (store credentials stay Fernet ciphertext)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.ledger import make_ledger_table
from bus.tables import make_bus_tables, service_metadata

SCHEMA = "telephony"
CONSUMER = "telephony"

metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


outbox, inbox = make_bus_tables(metadata)
# One row per command, committed before any ElevenLabs call (see bus.ledger).
upstream_commands = make_ledger_table(metadata)


class PhoneNumber(Base):
    """Numbers imported through this service (no secrets)."""

    __tablename__ = "phone_numbers"

    phone_number_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    phone_number: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(500))
    provider: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[str | None] = mapped_column(String(200))
    supports_inbound: Mapped[bool] = mapped_column(Boolean)
    supports_outbound: Mapped[bool] = mapped_column(Boolean)
    sip_username: Mapped[str | None] = mapped_column(String(500))
    created_at_unix: Mapped[int] = mapped_column(Integer)


class Call(Base):
    """One outbound call ElevenLabs accepted; its status moves to a final one exactly once."""

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_status_placed_at", "status", "placed_at"),)

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    attempt_id: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[str] = mapped_column(String(200))
    phone_number_id: Mapped[str] = mapped_column(String(200))
    to_number: Mapped[str] = mapped_column(String(32))
    call_sid: Mapped[str | None] = mapped_column(String(200))
    sip_call_id: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    campaign_id: Mapped[str | None] = mapped_column(String(200))
    recipient_id: Mapped[str | None] = mapped_column(String(200))
    attempt: Mapped[int | None] = mapped_column(Integer)
    sender_email: Mapped[str | None] = mapped_column(String(500))
    ecommerce_platform: Mapped[str | None] = mapped_column(String(20))
    # No store credentials: they go on in CallPlaced as received (only tool-webhooks reads them).
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    status_source: Mapped[str | None] = mapped_column(String(20))
    correlation_id: Mapped[str | None] = mapped_column(String(200))


class EarlyPostCall(Base):
    """A post-call webhook that came before its call was stored: kept until the call is (then
    applied in that transaction), or until reconciliation's give-up age for conversations that are
    never ours (an inbound call, another integration's call in the same workspace)."""

    __tablename__ = "early_post_calls"
    __table_args__ = (
        Index("ix_early_post_calls_conversation_id", "conversation_id"),
        Index("ix_early_post_calls_received_at", "received_at"),
    )

    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(200))
    event_json: Mapped[str] = mapped_column(Text)  # PostCallWebhookReceived, as on the bus
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerSession(Base):
    """Who was called in a conversation, for e-mail personalisation."""

    __tablename__ = "customer_sessions"

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(500))
    phone: Mapped[str | None] = mapped_column(String(32))
    sender_email: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
