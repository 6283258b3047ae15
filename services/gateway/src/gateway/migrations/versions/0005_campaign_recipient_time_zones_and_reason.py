"""campaign recipients: the time zones of their calling window and the reason of a failure or skip

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaign_recipients",
        sa.Column(
            "time_zones",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        schema="gateway",
    )
    op.add_column("campaign_recipients", sa.Column("reason", sa.Text(), nullable=True), schema="gateway")


def downgrade() -> None:
    op.drop_column("campaign_recipients", "reason", schema="gateway")
    op.drop_column("campaign_recipients", "time_zones", schema="gateway")
