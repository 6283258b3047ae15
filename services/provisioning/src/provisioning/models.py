"""Tables of the `provisioning` schema: the upstream-command ledger, known KB documents,
e-mail templates, tool tokens, outbox and inbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from bus.ledger import make_ledger_table
from bus.tables import make_bus_tables, service_metadata

SCHEMA = "provisioning"
CONSUMER = "provisioning"

metadata = service_metadata(SCHEMA)


class Base(DeclarativeBase):
    metadata = metadata


outbox, inbox = make_bus_tables(metadata)
# One row per command, committed before any ElevenLabs call (see bus.ledger).
upstream_commands = make_ledger_table(metadata)


class KnowledgeDocument(Base):
    """Documents this service created, so agent creation can build locators without a GET."""

    __tablename__ = "knowledge_documents"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    type: Mapped[str] = mapped_column(String(20))


class EmailTemplate(Base):
    """E-mail templates this service created, so a delete knows which ElevenLabs tool to remove."""

    __tablename__ = "email_templates"

    template_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    subject_template: Mapped[str] = mapped_column(Text)
    body_template: Mapped[str] = mapped_column(Text)
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    tool_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ToolToken(Base):
    """What the token of each tool that calls tool-webhooks names (never the token: it lives only in
    the tool's workspace secret upstream), so a rotation knows the lineage and next generation."""

    __tablename__ = "tool_tokens"

    tool_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_id: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(500))
    generation: Mapped[int] = mapped_column(Integer)
    secret_id: Mapped[str] = mapped_column(String(200))
