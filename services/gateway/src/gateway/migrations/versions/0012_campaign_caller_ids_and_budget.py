"""campaigns show their caller-ID pool's per-number dials and answer rate, and their budget of
call minutes with the minutes used

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 06:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaigns",
        sa.Column("phone_numbers", postgresql.JSONB(), nullable=False, server_default="[]"),
        schema="gateway",
    )
    op.add_column("campaigns", sa.Column("max_total_minutes", sa.Float(), nullable=True), schema="gateway")
    op.add_column(
        "campaigns",
        sa.Column("call_minutes_used", sa.Float(), nullable=False, server_default="0"),
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_column("campaigns", "call_minutes_used", schema="gateway")
    op.drop_column("campaigns", "max_total_minutes", schema="gateway")
    op.drop_column("campaigns", "phone_numbers", schema="gateway")
