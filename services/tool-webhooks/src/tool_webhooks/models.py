"""Tables of the `tool_webhooks` schema: webhook registrations, outbox and inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, MetaData, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.tables import make_bus_tables

SCHEMA = "tool_webhooks"
CONSUMER = "tool_webhooks"
# Inbox consumer name for verified post-call webhooks (message ids derived from the webhook).
POST_CALL_CONSUMER = "tool_webhooks.post_call"

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


class WebhookRegistration(Base):
    """One row per registration of the workspace post-call webhook; the latest one is in use.

    The signing secret is stored only as a Fernet token made with SWITCHBOARD_SECRET_KEY.
    """

    __tablename__ = "webhook_registrations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    webhook_id: Mapped[str] = mapped_column(String(200))
    webhook_url: Mapped[str] = mapped_column(String(2000))
    secret_encrypted: Mapped[str] = mapped_column(Text)
    command_message_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
