"""kept deliveries: authentic post-call webhooks we could not read

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 22:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('kept_deliveries',
    sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('correlation_id', sa.String(length=200), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kept_deliveries')),
    sa.UniqueConstraint('sha256', name=op.f('uq_kept_deliveries_sha256')),
    schema='tool_webhooks'
    )


def downgrade() -> None:
    op.drop_table('kept_deliveries', schema='tool_webhooks')
