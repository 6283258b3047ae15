"""early_post_calls: a post-call webhook that comes before its call is stored is kept, not dropped

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'early_post_calls',
        sa.Column('message_id', sa.String(length=200), nullable=False),
        sa.Column('conversation_id', sa.String(length=200), nullable=False),
        sa.Column('event_json', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('message_id', name=op.f('pk_early_post_calls')),
        schema='telephony',
    )
    op.create_index(
        'ix_early_post_calls_conversation_id', 'early_post_calls', ['conversation_id'], schema='telephony'
    )
    op.create_index('ix_early_post_calls_received_at', 'early_post_calls', ['received_at'], schema='telephony')


def downgrade() -> None:
    op.drop_index('ix_early_post_calls_received_at', table_name='early_post_calls', schema='telephony')
    op.drop_index('ix_early_post_calls_conversation_id', table_name='early_post_calls', schema='telephony')
    op.drop_table('early_post_calls', schema='telephony')
