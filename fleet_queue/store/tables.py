"""The card store's tables (SQLAlchemy Core). Migrations in ``fleet_queue/migrations`` build
exactly this; a test compares the two.

Times are epoch seconds (double precision) read from the *database* clock, so a lease
expires by one clock for every host and the same arithmetic works on SQLite and PostgreSQL.

``cards.route`` is the claim lane, derived from the target on create: ``a:<agent>`` for a
card aimed at one agent, ``c:<class>`` for one aimed at a role, ``''`` for anyone. With
``unmet_deps`` (how many dependencies are not yet done, kept up to date on create, link and
complete) the claim path is an equality probe on one index, ordered by priority then age.

``delivery_failures`` counts the card's delivery-failure releases since its last delivery
or unblock; at ``max_attempts`` the card is blocked (it can never be typed, it seems).

``card_deps`` holds the dependency edges (card_id depends on dep_id). It carries no foreign
key constraints on purpose: PostgreSQL checks a foreign key with a plan cached while the
table was small, which made a 100k-card import crawl; the store checks both ends exist
before it writes an edge, and cards are never deleted.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""64-bit on PostgreSQL; plain INTEGER on SQLite so the column aliases the rowid."""

cards = sa.Table(
    "cards",
    metadata,
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
    sa.Column("delivery_failures", sa.Integer(), nullable=False, server_default="0"),
    sa.UniqueConstraint("tenant_id", "id", name="uq_cards_tenant_id"),
    sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_cards_tenant_idempotency"),
    sa.CheckConstraint(
        "status in ('ready', 'claimed', 'blocked', 'done', 'failed')", name="ck_cards_status"
    ),
)
sa.Index(
    "ix_cards_claim",
    cards.c.tenant_id,
    cards.c.status,
    cards.c.unmet_deps,
    cards.c.route,
    cards.c.priority.desc(),
    cards.c.seq,
)
sa.Index("ix_cards_lease", cards.c.status, cards.c.lease_expires_at)

card_deps = sa.Table(
    "card_deps",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("card_id", sa.String(200), primary_key=True),
    sa.Column("dep_id", sa.String(200), primary_key=True),
)
sa.Index("ix_card_deps_dep", card_deps.c.tenant_id, card_deps.c.dep_id)

events = sa.Table(
    "events",
    metadata,
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
sa.Index("ix_events_card", events.c.tenant_id, events.c.card_id, events.c.id)
sa.Index("ix_events_kind_at", events.c.tenant_id, events.c.kind, events.c.at)
sa.Index("ix_events_at", events.c.tenant_id, events.c.at)

agents = sa.Table(
    "agents",
    metadata,
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

fleet_state = sa.Table(
    "fleet_state",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("paused", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("reason", sa.Text()),
    sa.Column("paused_by", sa.String(200)),
    sa.Column("changed_at", sa.Double()),
)

spend = sa.Table(
    "spend",
    metadata,
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
"""The spend ledger: tokens and cost per tenant, UTC day, agent, card and model. ``card`` is
``''`` for work outside any card (a key column, so it cannot be NULL); ``cost`` NULL means
unknown (a model with no price): once unknown, the row's cost stays unknown."""
sa.Index("ix_spend_day", spend.c.day)
sa.Index("ix_spend_card", spend.c.tenant_id, spend.c.card)

spend_offsets = sa.Table(
    "spend_offsets",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("agent", sa.String(200), primary_key=True),
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("offset", sa.BigInteger(), nullable=False),
    sa.Column("state", sa.JSON(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
)
"""How far the spend reader has read each runtime record file, written in the same
transaction as the ledger rows it gave: a restart of the reader counts nothing twice.
``state`` is what reading on needs (Codex: the last cumulative total and model; Claude
Code: the message keys already counted)."""

chat_messages = sa.Table(
    "chat_messages",
    metadata,
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
        "state in ('queued', 'delivered', 'answered', 'failed')", name="ck_chat_messages_state"
    ),
)
"""Messages from chat to the orchestrator, durable across connector restarts: ``queued``
until typed, ``delivered`` until the turn's reply is sent, then ``answered`` (or ``failed``).
A network's message id is stored once (a re-read after a crash is not a second message);
``reply`` is written before it is sent, so a restart sends that same text again under the
same transaction id, which the network drops as a repeat."""
sa.Index(
    "ix_chat_messages_open", chat_messages.c.tenant_id, chat_messages.c.state, chat_messages.c.id
)
