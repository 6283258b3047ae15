"""campaign changes: the ordered log the live progress streams (SSE) read and resume from

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_changes",
        sa.Column("change_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("campaign_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("change_id", name=op.f("pk_campaign_changes")),
        schema="gateway",
    )
    op.create_index(
        "ix_campaign_changes_campaign_change",
        "campaign_changes",
        ["campaign_id", "change_id"],
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_index("ix_campaign_changes_campaign_change", table_name="campaign_changes", schema="gateway")
    op.drop_table("campaign_changes", schema="gateway")
