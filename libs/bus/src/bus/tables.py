"""Tables every service owns in its own schema: the outbox and the inbox (processed messages), on
metadata that names constraints the same way in every schema."""

from __future__ import annotations

from faststream_outbox import make_outbox_table
from sqlalchemy import Column, DateTime, MetaData, PrimaryKeyConstraint, String, Table, func

# Constraint and index names Alembic writes into every service's migrations (pk_<table>, ...).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    """The metadata of one service's tables: all in `schema`, constraints named by convention."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def make_inbox_table(metadata: MetaData) -> Table:
    """One row per message a consumer has handled; inserted in the handler's transaction."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(200), nullable=False),
        Column("message_id", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "message_id", name="inbox_pk"),
    )


def make_bus_tables(metadata: MetaData) -> tuple[Table, Table]:
    """(outbox, inbox) attached to the service's metadata so Alembic migrates them."""
    return make_outbox_table(metadata, table_name="outbox"), make_inbox_table(metadata)
