"""An index on spend (tenant_id, card): the card page and `fleet spend --card` read one
card's rows, which otherwise scans the whole ledger (its key leads with the day).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_spend_card", "spend", ["tenant_id", "card"])


def downgrade() -> None:
    op.drop_index("ix_spend_card", table_name="spend")
