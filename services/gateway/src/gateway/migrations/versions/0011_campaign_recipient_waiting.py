"""campaign recipients say why and until when they wait (quiet hours, calling window, caps);
calls record a quiet-hours override

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaign_recipients", sa.Column("waiting_reason", sa.String(40), nullable=True), schema="gateway"
    )
    op.add_column(
        "campaign_recipients", sa.Column("next_attempt_at_unix", sa.BigInteger(), nullable=True), schema="gateway"
    )


    op.add_column(
        "calls",
        sa.Column("quiet_hours_overridden", sa.Boolean(), nullable=False, server_default="false"),
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_column("calls", "quiet_hours_overridden", schema="gateway")
    op.drop_column("campaign_recipients", "next_attempt_at_unix", schema="gateway")
    op.drop_column("campaign_recipients", "waiting_reason", schema="gateway")
