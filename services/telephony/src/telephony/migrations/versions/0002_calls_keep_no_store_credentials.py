"""calls keep no store credentials: telephony only passes them on (in CallPlaced), never reads them

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column('calls', 'ecommerce_credentials_encrypted', schema='telephony')


def downgrade() -> None:
    op.add_column(
        'calls', sa.Column('ecommerce_credentials_encrypted', sa.Text(), nullable=True), schema='telephony'
    )
