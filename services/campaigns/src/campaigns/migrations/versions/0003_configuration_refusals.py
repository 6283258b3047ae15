"""campaigns count consecutive carrier refusals that blame our configuration

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaigns",
        sa.Column("configuration_refusals", sa.Integer(), nullable=False, server_default="0"),
        schema="campaigns",
    )


def downgrade() -> None:
    op.drop_column("campaigns", "configuration_refusals", schema="campaigns")
