"""recipients keep every zone their calling window applies in; campaign_numbers (one dialling
recipient per number and campaign)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "recipients",
        sa.Column("time_zones", postgresql.ARRAY(sa.String(length=100)), nullable=True),
        schema="campaigns",
    )
    op.execute("UPDATE campaigns.recipients SET time_zones = ARRAY[time_zone]")
    op.alter_column("recipients", "time_zones", nullable=False, schema="campaigns")
    op.drop_column("recipients", "time_zone", schema="campaigns")
    op.create_table(
        "campaign_numbers",
        sa.Column("campaign_id", sa.String(length=200), nullable=False),
        sa.Column("phone_number", sa.String(length=64), nullable=False),
        sa.Column("recipient_pk", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "phone_number", name=op.f("pk_campaign_numbers")),
        schema="campaigns",
    )
    # Numbers already dialled in campaigns still running: their first dialled recipient owns them.
    op.execute(
        """
        INSERT INTO campaigns.campaign_numbers (campaign_id, phone_number, recipient_pk)
        SELECT DISTINCT ON (campaign_id, phone_number) campaign_id, phone_number, id
        FROM campaigns.recipients WHERE dispatched
        ORDER BY campaign_id, phone_number, position
        """
    )


def downgrade() -> None:
    op.drop_table("campaign_numbers", schema="campaigns")
    op.add_column(
        "recipients",
        sa.Column("time_zone", sa.String(length=100), nullable=True),
        schema="campaigns",
    )
    op.execute("UPDATE campaigns.recipients SET time_zone = time_zones[1]")
    op.alter_column("recipients", "time_zone", nullable=False, schema="campaigns")
    op.drop_column("recipients", "time_zones", schema="campaigns")
