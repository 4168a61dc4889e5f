"""The card store: cards, card_deps, events, agents, fleet_state.

Revision ID: 0001
Revises:
Create Date: 2024-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cards",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False, server_default=""),
        sa.Column("phase", sa.String(200)),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("route", sa.String(260), nullable=False, server_default=""),
        sa.Column("depends_on", sa.JSON(), nullable=False),
        sa.Column("unmet_deps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("target_agent", sa.String(200)),
        sa.Column("target_class", sa.String(200)),
        sa.Column("created_host", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255)),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("token", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("lease_expires_at", sa.Double()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("acceptance", sa.JSON()),
        sa.Column("result", sa.Text()),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("claimed_at", sa.Double()),
        sa.Column("delivered_at", sa.Double()),
        sa.Column("completed_at", sa.Double()),
        sa.UniqueConstraint("tenant_id", "id", name="uq_cards_tenant_id"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_cards_tenant_idempotency"),
        sa.CheckConstraint(
            "status in ('ready', 'claimed', 'blocked', 'done', 'failed')", name="ck_cards_status"
        ),
    )
    op.create_index(
        "ix_cards_claim",
        "cards",
        ["tenant_id", "status", "unmet_deps", "route", sa.text("priority DESC"), "seq"],
    )
    op.create_index("ix_cards_lease", "cards", ["status", "lease_expires_at"])

    op.create_table(
        "card_deps",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("card_id", sa.String(200), primary_key=True),
        sa.Column("dep_id", sa.String(200), primary_key=True),
    )
    op.create_index("ix_card_deps_dep", "card_deps", ["tenant_id", "dep_id"])

    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("card_id", sa.String(200)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(200)),
        sa.Column("token", sa.BigInteger()),
        sa.Column("detail", sa.Text()),
        sa.Column("at", sa.Double(), nullable=False),
    )
    op.create_index("ix_events_card", "events", ["tenant_id", "card_id", "id"])
    op.create_index("ix_events_kind_at", "events", ["tenant_id", "kind", "at"])
    op.create_index("ix_events_at", "events", ["tenant_id", "at"])

    op.create_table(
        "agents",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("agent", sa.String(200), primary_key=True),
        sa.Column("runtime", sa.String(64)),
        sa.Column("agent_class", sa.String(200)),
        sa.Column("heartbeat_at", sa.Double()),
        sa.Column("health", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("heartbeat_status", sa.String(32)),
        sa.Column("pane_alive", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("pid", sa.Integer()),
        sa.Column("pane_command", sa.String(255)),
        sa.Column("idle_seconds", sa.Double()),
        sa.Column("readiness", sa.String(16), nullable=False, server_default="unknown"),
        sa.Column("current_card", sa.String(200)),
        sa.Column("updated_at", sa.Double(), nullable=False),
    )

    op.create_table(
        "fleet_state",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reason", sa.Text()),
        sa.Column("paused_by", sa.String(200)),
        sa.Column("changed_at", sa.Double()),
    )


def downgrade() -> None:
    op.drop_table("fleet_state")
    op.drop_table("agents")
    op.drop_index("ix_events_at", table_name="events")
    op.drop_index("ix_events_kind_at", table_name="events")
    op.drop_index("ix_events_card", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_card_deps_dep", table_name="card_deps")
    op.drop_table("card_deps")
    op.drop_index("ix_cards_lease", table_name="cards")
    op.drop_index("ix_cards_claim", table_name="cards")
    op.drop_table("cards")
