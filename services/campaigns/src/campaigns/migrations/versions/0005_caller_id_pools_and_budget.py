"""caller-ID pools: a campaign names several numbers (each with an optional daily cap); attempts
keep the number they were dialled from; per-number dial and answer counters; the number projection
keeps the E.164 number (a pool prefers the recipient's country and area code); a budget of call
minutes with the seconds used and the longest call so far

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 06:10:00.000000
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
    op.add_column(
        "campaigns",
        sa.Column("phone_number_ids", postgresql.ARRAY(sa.String(200)), nullable=True),
        schema="campaigns",
    )
    op.add_column(
        "campaigns", sa.Column("phone_number_daily_caps", postgresql.JSONB(), nullable=True), schema="campaigns"
    )
    op.add_column("campaigns", sa.Column("max_total_minutes", sa.Float(), nullable=True), schema="campaigns")
    op.add_column(
        "campaigns", sa.Column("call_seconds", sa.BigInteger(), nullable=False, server_default="0"), schema="campaigns"
    )
    op.add_column(
        "campaigns", sa.Column("longest_call_s", sa.Integer(), nullable=False, server_default="0"), schema="campaigns"
    )
    op.add_column("attempts", sa.Column("phone_number_id", sa.String(200), nullable=True), schema="campaigns")
    op.create_index(
        "ix_attempts_phone_number_id_dialed_at",
        "attempts",
        ["phone_number_id", "dialed_at"],
        schema="campaigns",
    )
    op.add_column(
        "phone_number_providers", sa.Column("phone_number", sa.String(64), nullable=True), schema="campaigns"
    )
    op.create_table(
        "campaign_caller_ids",
        sa.Column("campaign_id", sa.String(200), nullable=False),
        sa.Column("phone_number_id", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("dials", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id", "phone_number_id", name=op.f("pk_campaign_caller_ids")),
        schema="campaigns",
    )


def downgrade() -> None:
    op.drop_table("campaign_caller_ids", schema="campaigns")
    op.drop_column("phone_number_providers", "phone_number", schema="campaigns")
    op.drop_index("ix_attempts_phone_number_id_dialed_at", table_name="attempts", schema="campaigns")
    op.drop_column("attempts", "phone_number_id", schema="campaigns")
    op.drop_column("campaigns", "longest_call_s", schema="campaigns")
    op.drop_column("campaigns", "call_seconds", schema="campaigns")
    op.drop_column("campaigns", "max_total_minutes", schema="campaigns")
    op.drop_column("campaigns", "phone_number_daily_caps", schema="campaigns")
    op.drop_column("campaigns", "phone_number_ids", schema="campaigns")
