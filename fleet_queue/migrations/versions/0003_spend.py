"""spend and spend_offsets: the ledger of every agent's tokens and cost, and how far the
reader has read each runtime record file (written in one transaction with the ledger).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spend",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("agent", sa.String(200), primary_key=True),
        sa.Column("card", sa.String(200), primary_key=True, server_default=""),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost", sa.Double()),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_spend_day", "spend", ["day"])
    op.create_table(
        "spend_offsets",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("agent", sa.String(200), primary_key=True),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spend_offsets")
    op.drop_index("ix_spend_day", table_name="spend")
    op.drop_table("spend")
