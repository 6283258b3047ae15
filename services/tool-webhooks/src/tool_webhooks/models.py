"""Tables of the `tool_webhooks` schema: webhook registrations, projections for the mid-call tools
(conversations, customer sessions, e-mail templates, tool tokens), e-mail invocations, authentic
post-call deliveries we could not read, outbox and inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.tables import make_bus_tables, service_metadata

SCHEMA = "tool_webhooks"
CONSUMER = "tool_webhooks"
# Inbox consumer name for verified post-call webhooks (message ids derived from the webhook).
POST_CALL_CONSUMER = "tool_webhooks.post_call"
# Inbox consumer name for the projections fed by telephony and provisioning events.
PROJECTION_CONSUMER = "tool_webhooks.projections"

metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


outbox, inbox = make_bus_tables(metadata)


class WebhookRegistration(Base):
    """One row per registration of the workspace post-call webhook; the latest one is in use.

    The signing secret is stored only as ciphertext (`bus.secrets`) bound to its row.
    """

    __tablename__ = "webhook_registrations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(200))
    webhook_url: Mapped[str] = mapped_column(String(2000))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    command_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Conversation(Base):
    """From `CallPlaced`: which store (if any) a conversation may query, and its sender address.

    The store credentials are ciphertext bound to this row (re-bound from the event's field by
    `bus.secrets`); they are decrypted only in memory, only to query the store.
    """

    __tablename__ = "conversations"

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    agent_id: Mapped[str | None] = mapped_column(String(200))
    ecommerce_platform: Mapped[str | None] = mapped_column(String(20))
    ecommerce_credentials_encrypted: Mapped[str | None] = mapped_column(Text)
    sender_email: Mapped[str | None] = mapped_column(String(320))
    # What the call-control tools need of the call (`call_control.call_of`): to_number,
    # phone_number_id, provider, campaign_id, recipient_id, dynamic_variables, calling_window,
    # time_zones, customer_name, customer_email. Null for calls projected before it existed.
    call: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class CustomerSession(Base):
    """From `CustomerSessionStored`/`Deleted` and `CallPlaced.customer_info`: who is on the call."""

    __tablename__ = "customer_sessions"

    conversation_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    sender_email: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class EmailTemplate(Base):
    """From `EmailTemplateCreated`/`Deleted`: what the e-mail tool renders."""

    __tablename__ = "email_templates"

    template_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    subject_template: Mapped[str] = mapped_column(Text)
    body_template: Mapped[str] = mapped_column(Text)
    # [{"name", "description", "required"}]
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class EmailInvocation(Base):
    """One e-mail tool invocation: the same (conversation, template, parameters) within
    EMAIL_DEDUPE_WINDOW_S of `first_seen` is the same invocation and sends nothing more."""

    __tablename__ = "email_invocations"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str] = mapped_column(String(64))


class KeptDelivery(Base):
    """A correctly signed post-call delivery we could not read (not JSON, no type or conversation id,
    too large to parse). ElevenLabs sends it once, so it is kept here for an operator, not lost.

    `body` holds at most TOOL_WEBHOOKS_MAX_PARSE_BYTES (`truncated` says when there was more);
    `size_bytes` and `sha256` describe the whole delivery.
    """

    __tablename__ = "kept_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the same delivery is kept once
    truncated: Mapped[bool] = mapped_column(default=False)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ToolTokenState(Base):
    """From provisioning's tool events: which token generation each tool that calls us accepts.

    A mid-call tool call is honoured only for a tool known here and not deleted, with the current
    generation (or a newer one, minted by a rotation whose event is still on its way), or the
    previous one until `previous_valid_until`. Deleted tools keep their row (`deleted_at`), so a
    late creation event cannot bring their tokens back.
    """

    __tablename__ = "tool_tokens"
    __table_args__ = (UniqueConstraint("token_id", "route"),)

    tool_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_id: Mapped[str | None] = mapped_column(String(200))
    route: Mapped[str | None] = mapped_column(String(500))
    generation: Mapped[int | None] = mapped_column(Integer)
    previous_valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
