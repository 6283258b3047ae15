"""quiet hours and frequency caps: attempts keep the number dialled (rolling 24 h count per
number across campaigns), recipients say why they wait, campaigns may cap attempts per number

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("attempts", sa.Column("to_number", sa.String(64), nullable=True), schema="campaigns")
    op.create_index(
        "ix_attempts_to_number_dialed_at", "attempts", ["to_number", "dialed_at"], schema="campaigns"
    )
    op.add_column("recipients", sa.Column("waiting_reason", sa.String(40), nullable=True), schema="campaigns")
    op.add_column(
        "campaigns", sa.Column("max_daily_attempts_per_number", sa.Integer(), nullable=True), schema="campaigns"
    )


def downgrade() -> None:
    op.drop_column("campaigns", "max_daily_attempts_per_number", schema="campaigns")
    op.drop_column("recipients", "waiting_reason", schema="campaigns")
    op.drop_index("ix_attempts_to_number_dialed_at", table_name="attempts", schema="campaigns")
    op.drop_column("attempts", "to_number", schema="campaigns")
