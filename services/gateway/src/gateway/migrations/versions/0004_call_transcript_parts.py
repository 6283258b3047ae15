"""call transcript parts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('call_transcript_parts',
    sa.Column('conversation_id', sa.String(length=200), nullable=False),
    sa.Column('part_index', sa.Integer(), nullable=False),
    sa.Column('part_count', sa.Integer(), nullable=False),
    sa.Column('turn_count', sa.Integer(), nullable=False),
    sa.Column('transcript_json', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('conversation_id', 'part_index', name=op.f('pk_call_transcript_parts')),
    schema='gateway'
    )


def downgrade() -> None:
    op.drop_table('call_transcript_parts', schema='gateway')
