"""the command ledger is `upstream_commands` (bus.ledger): "attempt" means a dial attempt only

Renames the table and its primary key; every row stays.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 06:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.rename_table('attempts', 'upstream_commands', schema='provisioning')
    op.execute('ALTER TABLE provisioning.upstream_commands RENAME CONSTRAINT pk_attempts TO pk_upstream_commands')


def downgrade() -> None:
    op.execute('ALTER TABLE provisioning.upstream_commands RENAME CONSTRAINT pk_upstream_commands TO pk_attempts')
    op.rename_table('upstream_commands', 'attempts', schema='provisioning')
