"""Tables of the `notifier` schema: deliveries (one per SendEmail invocation), outbox and inbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, MetaData, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.tables import make_bus_tables

SCHEMA = "notifier"
CONSUMER = "notifier"

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


class DeliveryStatus:
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Delivery(Base):
    """One row per SendEmail invocation (its message_id), committed as `sending` before the mail
    server or e-mail API is contacted: a redelivery that finds it `sending` knows an earlier
    delivery may already have sent the e-mail, so it never sends again. The body is not kept."""

    __tablename__ = "deliveries"

    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[str] = mapped_column(String(200))
    template_id: Mapped[str] = mapped_column(String(200))
    to_email: Mapped[str] = mapped_column(Text)
    transport: Mapped[str | None] = mapped_column(String(10))
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
