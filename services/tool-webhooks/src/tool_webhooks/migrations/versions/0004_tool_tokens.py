"""tool tokens: which token generation each tool accepts, and deleted tools

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tool_tokens',
    sa.Column('tool_id', sa.String(length=200), nullable=False),
    sa.Column('token_id', sa.String(length=200), nullable=True),
    sa.Column('route', sa.String(length=500), nullable=True),
    sa.Column('generation', sa.Integer(), nullable=True),
    sa.Column('previous_valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('tool_id', name=op.f('pk_tool_tokens')),
    sa.UniqueConstraint('token_id', 'route', name=op.f('uq_tool_tokens_token_id')),
    schema='tool_webhooks'
    )


def downgrade() -> None:
    op.drop_table('tool_tokens', schema='tool_webhooks')
