"""campaign results: post-call analyses, recipients' submitted name, e-mail and dynamic variables,
an index for a recipient's attempts and one for the outcome filter

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_analyses",
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("call_successful", sa.String(length=20), nullable=True),
        sa.Column("transcript_summary", sa.Text(), nullable=True),
        sa.Column("data_collection_results", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("evaluation_criteria_results", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("termination_reason", sa.Text(), nullable=True),
        sa.Column("event_timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_call_analyses")),
        schema="gateway",
    )
    op.add_column(
        "campaign_recipients", sa.Column("name", sa.String(length=500), nullable=True), schema="gateway"
    )
    op.add_column(
        "campaign_recipients", sa.Column("email", sa.String(length=500), nullable=True), schema="gateway"
    )
    op.add_column(
        "campaign_recipients",
        sa.Column(
            "dynamic_variables", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        schema="gateway",
    )
    op.create_index(
        "ix_campaign_recipients_campaign_outcome",
        "campaign_recipients",
        ["campaign_id", "outcome"],
        schema="gateway",
    )
    op.create_index(
        "ix_calls_campaign_recipient_attempt",
        "calls",
        ["campaign_id", "recipient_id", "attempt"],
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_index("ix_calls_campaign_recipient_attempt", table_name="calls", schema="gateway")
    op.drop_index(
        "ix_campaign_recipients_campaign_outcome", table_name="campaign_recipients", schema="gateway"
    )
    op.drop_column("campaign_recipients", "dynamic_variables", schema="gateway")
    op.drop_column("campaign_recipients", "email", schema="gateway")
    op.drop_column("campaign_recipients", "name", schema="gateway")
    op.drop_table("call_analyses", schema="gateway")
