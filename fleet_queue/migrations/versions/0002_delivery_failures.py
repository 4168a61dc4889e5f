"""cards.delivery_failures: the count of delivery-failure releases, kept in a column.

The store used to count them from the events whose detail began with "delivery failed";
a column keeps the rule off the reason's text. Cards already in flight start from the
releases recorded since their last delivery or unblock, as before.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.add_column(
            sa.Column("delivery_failures", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE cards SET delivery_failures = ("
        " SELECT count(*) FROM events WHERE events.tenant_id = cards.tenant_id"
        " AND events.card_id = cards.id AND events.kind = 'released'"
        " AND events.detail LIKE 'delivery failed%'"
        " AND events.id > (SELECT coalesce(max(e.id), 0) FROM events AS e"
        "  WHERE e.tenant_id = cards.tenant_id AND e.card_id = cards.id"
        "  AND e.kind IN ('delivered', 'unblocked')))"
        " WHERE cards.status IN ('ready', 'claimed')"
    )


def downgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("delivery_failures")
