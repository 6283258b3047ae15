"""campaigns: what callees ask for during a call (opt-out, callbacks) and analysis-driven retries

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("analysis_rules", postgresql.JSONB(), nullable=True), schema="campaigns")
    op.add_column(
        "recipients",
        sa.Column("opted_out", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema="campaigns",
    )
    op.add_column("recipients", sa.Column("callback_at", sa.DateTime(timezone=True)), schema="campaigns")
    op.add_column("recipients", sa.Column("callback_requested", sa.Text()), schema="campaigns")
    op.add_column(
        "recipients",
        sa.Column("callback_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema="campaigns",
    )
    op.create_table(
        "follow_up_calls",
        sa.Column("conversation_id", sa.String(200), primary_key=True),
        sa.Column("to_number", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("phone_number_id", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("dynamic_variables", postgresql.JSONB(), nullable=False),
        sa.Column("customer_name", sa.Text()),
        sa.Column("customer_email", sa.Text()),
        sa.Column("requested", sa.Text()),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(200)),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_follow_up_calls"),
        schema="campaigns",
    )
    op.create_index(
        "ix_follow_up_calls_status_due_at", "follow_up_calls", ["status", "due_at"], schema="campaigns"
    )


def downgrade() -> None:
    op.drop_index("ix_follow_up_calls_status_due_at", table_name="follow_up_calls", schema="campaigns")
    op.drop_table("follow_up_calls", schema="campaigns")
    for column in ("callback_pending", "callback_requested", "callback_at", "opted_out"):
        op.drop_column("recipients", column, schema="campaigns")
    op.drop_column("campaigns", "analysis_rules", schema="campaigns")
