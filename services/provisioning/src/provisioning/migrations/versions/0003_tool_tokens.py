"""tool tokens: the lineage and generation of each tool's token, for rotation

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tool_tokens',
    sa.Column('tool_id', sa.String(length=200), nullable=False),
    sa.Column('token_id', sa.String(length=200), nullable=False),
    sa.Column('route', sa.String(length=500), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('secret_id', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('tool_id', name=op.f('pk_tool_tokens')),
    schema='provisioning'
    )


def downgrade() -> None:
    op.drop_table('tool_tokens', schema='provisioning')
