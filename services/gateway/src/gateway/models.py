"""Read models the gateway projects from events, plus operations and staged uploads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Integer, LargeBinary, MetaData, String, Text, func
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
