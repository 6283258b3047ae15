"""gateway: what callees asked for, in the read models: a recipient's callback, a do-not-call
number's source and conversation

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 05:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaign_recipients", sa.Column("callback_at_unix", sa.BigInteger()), schema="gateway")
    op.add_column("campaign_recipients", sa.Column("callback_requested", sa.Text()), schema="gateway")
    op.add_column("do_not_call", sa.Column("source", sa.String(20)), schema="gateway")
    op.add_column("do_not_call", sa.Column("conversation_id", sa.String(200)), schema="gateway")


def downgrade() -> None:
    op.drop_column("do_not_call", "conversation_id", schema="gateway")
    op.drop_column("do_not_call", "source", schema="gateway")
    op.drop_column("campaign_recipients", "callback_requested", schema="gateway")
    op.drop_column("campaign_recipients", "callback_at_unix", schema="gateway")
