"""chat_messages: what people said to the orchestrator from chat, durable until answered.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chat_messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("network", sa.String(32), nullable=False),
        sa.Column("room", sa.String(255), nullable=False),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("thread_root", sa.String(255)),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("turn_id", sa.String(64)),
        sa.Column("prompt_sha", sa.String(64)),
        sa.Column("reply", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("delivered_at", sa.Double()),
        sa.Column("answered_at", sa.Double()),
        sa.UniqueConstraint("tenant_id", "network", "event_id", name="uq_chat_messages_event"),
        sa.CheckConstraint(
            "state in ('queued', 'delivered', 'answered', 'failed')",
            name="ck_chat_messages_state",
        ),
    )
    op.create_index("ix_chat_messages_open", "chat_messages", ["tenant_id", "state", "id"])


def downgrade() -> None:
    op.drop_index("ix_chat_messages_open", table_name="chat_messages")
    op.drop_table("chat_messages")
