"""webhook deliveries: an index for retention (finished deliveries by their last change)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 05:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_last_event_at",
        "webhook_deliveries",
        ["last_event_at"],
        schema="gateway",
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_last_event_at", table_name="webhook_deliveries", schema="gateway")
