"""tool-webhooks: what the call-control tools need of a conversation's call (number, campaign
recipient, variables, calling window)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:40:00.000000
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
    op.add_column("conversations", sa.Column("call", postgresql.JSONB(), nullable=True), schema="tool_webhooks")


def downgrade() -> None:
    op.drop_column("conversations", "call", schema="tool_webhooks")
