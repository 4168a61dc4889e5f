"""Every SQL statement of the card store, named, and the SQLite/PostgreSQL differences.

Read this file and ``read_statements`` (the statements that only read: lists, events,
stats, the board, agents) to know the data contract: the lifecycle and read models name a
statement from these and hold no SQL of their own (procrastinate's ``sql/queries.sql`` habit). The
backend differences live in :class:`Statements` only: ``IN`` lists (an array parameter on
PostgreSQL), upserts, the lane probe of many routes, bulk inserts (``COPY`` on PostgreSQL,
one prepared ``executemany`` on SQLite), the link lock and ``ANALYZE``.

Every statement is scoped to one tenant; every time comes from the database clock
(:class:`~fleet_queue.store.engine.db_now`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import ReturningUpdate

from fleet_queue.cards import CardStatus, EventKind
from fleet_queue.store.engine import db_now, upsert_insert
from fleet_queue.store.read_statements import (
    CARD_COLUMNS,
    CARD_SELECT,
    CLAIMED,
    READY,
    ReadStatements,
)
from fleet_queue.store.tables import agents, card_deps, cards, events, fleet_state

if TYPE_CHECKING:
    import sqlite3

    import psycopg

CHUNK = 2000
"""Rows per statement in bulk work (below SQLite's 32k host-parameter limit)."""

LEASE_COLUMNS = (
    cards.c.seq,
    cards.c.id,
    cards.c.token,
    cards.c.lease_owner,
    cards.c.host,
    cards.c.attempts,
    cards.c.max_attempts,
)
"""What a reclaim reads of a lease it takes back."""

# --- prebuilt hot-path statements (compiled once, cached by SQLAlchemy) ------------------

LANE_PROBE = (
    sa.select(cards.c.seq)
    .where(
        cards.c.tenant_id == sa.bindparam("tenant"),
        cards.c.status == READY,
        cards.c.unmet_deps == 0,
        cards.c.route == sa.bindparam("route"),
    )
    .order_by(cards.c.priority.desc(), cards.c.seq)
    .limit(sa.bindparam("lim", type_=sa.Integer))
    .with_for_update(skip_locked=True)
)

TAKE = (
    sa.update(cards)
    .where(cards.c.seq == sa.bindparam("b_seq"), cards.c.status == READY)
    .values(
        status=CLAIMED,
        lease_owner=sa.bindparam("b_agent"),
        host=sa.bindparam("b_host"),
        token=cards.c.token + 1,
        attempts=cards.c.attempts + 1,
        lease_expires_at=db_now() + sa.bindparam("b_ttl", type_=sa.Double),
        claimed_at=db_now(),
        delivered_at=None,
        updated_at=db_now(),
    )
)

TAKE_ONE = TAKE.returning(cards.c.seq, *CARD_COLUMNS)

CARDS_BY_SEQ = sa.select(cards.c.seq, *CARD_COLUMNS).where(
    cards.c.seq.in_(sa.bindparam("seqs", expanding=True))
)

# The host worker's ``delivered`` mark: the fence (token, owner, a live lease by the
# database clock) and the write in one statement, built once (``Lifecycle.record_delivery``).
MARK_DELIVERED = (
    sa.update(cards)
    .where(
        cards.c.tenant_id == sa.bindparam("d_tenant"),
        cards.c.id == sa.bindparam("d_card"),
        cards.c.status == CLAIMED,
        cards.c.token == sa.bindparam("d_token"),
        cards.c.lease_owner == sa.bindparam("d_owner"),
        cards.c.lease_expires_at > db_now(),
    )
    .values(delivered_at=db_now(), delivery_failures=0, updated_at=db_now())
    .returning(*CARD_COLUMNS)
)

INSERT_EVENT = sa.insert(events).values(at=db_now())

CLOCK = sa.select(db_now())

# Which of many lanes hold a claimable card: one statement, one index probe per lane.
_LANES_WITH_WORK = {
    "sqlite": sa.text(
        "SELECT lanes.value FROM json_each(:routes) AS lanes WHERE EXISTS ("
        " SELECT 1 FROM cards WHERE cards.tenant_id = :tenant AND cards.status = 'ready'"
        " AND cards.unmet_deps = 0 AND cards.route = lanes.value)"
    ),
    "postgresql": sa.text(
        "SELECT lanes.route FROM unnest(CAST(:routes AS text[])) AS lanes(route)"
        " CROSS JOIN LATERAL (SELECT 1 FROM cards WHERE cards.tenant_id = :tenant"
        " AND cards.status = 'ready' AND cards.unmet_deps = 0 AND cards.route = lanes.route"
        " ORDER BY cards.priority DESC, cards.seq LIMIT 1) AS hit"
    ),
}


def route(target_agent: str | None, target_class: str | None) -> str:
    """The claim lane of a card: one agent, one class, or anyone."""
    if target_agent:
        return f"a:{target_agent}"
    if target_class:
        return f"c:{target_class}"
    return ""


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unlease() -> dict[str, Any]:
    """Values that end a lease (the card goes back to the pool or is parked)."""
    return {"lease_owner": None, "lease_expires_at": None, "host": None}


def give_back() -> dict[str, Any]:
    """Values of a lease given back to ready by its holder: not counted as an attempt."""
    return {**unlease(), "status": READY, "attempts": cards.c.attempts - 1}


def one_more_dependency(depends_on: list[str], *, unmet: bool) -> dict[str, Any]:
    """Values of a card that gained a dependency (``unmet``: one not done yet)."""
    return {"depends_on": depends_on, "unmet_deps": cards.c.unmet_deps + int(unmet)}


def finish(status: str, *, result: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """A card leaving its lease for good; owner and host stay as a record of who held it."""
    values: dict[str, Any] = {"status": status, "completed_at": db_now(), "lease_expires_at": None}
    if result is not None:
        values["result"] = result
    if reason is not None:
        values["reason"] = reason
    return values


def expiry_in(seconds: float) -> sa.ColumnElement[float]:
    """``seconds`` from now by the database clock."""
    return db_now() + sa.literal(float(seconds), sa.Double)


def _as_json(value: Any) -> str:
    """``json.dumps``, with the two values most cards carry (no deps, no acceptance) free."""
    if value is None:
        return "null"
    if isinstance(value, list) and not value:
        return "[]"
    return json.dumps(value)


class Statements(ReadStatements):
    """The store's statements for one tenant on one backend: the claim, lease, link and
    write statements here, the reads (lists, events, stats, board, agents) inherited."""

    def __init__(self, tenant: str, dialect: str) -> None:
        super().__init__(tenant, dialect)
        self._lanes_with_work = _LANES_WITH_WORK[dialect]
        self._insert = upsert_insert(dialect)

    # --- backend differences ---------------------------------------------------------------

    def in_(self, column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
        """``column IN (...)``; on PostgreSQL one array parameter instead of one per value."""
        if self.sqlite:
            return column.in_(values)
        from sqlalchemy.dialects.postgresql import ARRAY  # loaded already on PostgreSQL

        return column == sa.any_(sa.bindparam(None, list(values), type_=ARRAY(sa.Text)))

    def lanes_with_work(self, routes: list[str]) -> tuple[sa.TextClause, dict[str, Any]]:
        value: Any = json.dumps(routes) if self.sqlite else routes
        return self._lanes_with_work, {"routes": value, "tenant": self.tenant}

    def upsert(self, table: sa.Table, keys: list[str], values: dict[str, Any] | None) -> sa.Insert:
        """INSERT ... ON CONFLICT DO UPDATE for either backend."""
        stmt = self._insert(table)
        if values is not None:
            stmt = stmt.values(**values)
        elif "updated_at" in table.c:
            stmt = stmt.values(updated_at=db_now())
        update = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=keys, set_=update)

    def bulk_insert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Rows straight to the driver, JSON columns serialised here as SQLAlchemy would.

        SQLAlchemy's per-row parameter processing was half the time of a 100k-card
        import; PostgreSQL takes the rows by COPY, SQLite by one prepared executemany.
        """
        names = list(rows[0])
        json_cols = {c.name for c in table.c if isinstance(c.type, sa.JSON)}
        values = ([_as_json(row[n]) if n in json_cols else row[n] for n in names] for row in rows)
        columns = ", ".join(f'"{n}"' for n in names)
        if self.sqlite:
            marks = ", ".join("?" * len(names))
            raw = cast("sqlite3.Connection", conn.connection.dbapi_connection)
            raw.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", values)
            return
        dbapi = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
        with dbapi.cursor() as cur, cur.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row_values in values:
                copy.write_row(row_values)

    def link_lock(self) -> sa.TextClause | None:
        """PostgreSQL: one link at a time per tenant (a cycle check sees every edge).
        SQLite needs none: its write transaction already excludes every other writer."""
        if self.sqlite:
            return None
        return sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))").bindparams(
            k=f"fleet-link:{self.tenant}"
        )

    def analyze_cards(self) -> str | None:
        """PostgreSQL keeps the planner's picture of a freshly filled table right."""
        return None if self.sqlite else "ANALYZE cards"

    # --- cards -----------------------------------------------------------------------------

    def card(self, card_id: str, *, lock: bool = False) -> sa.Select[Any]:
        stmt = CARD_SELECT.where(self._mine, cards.c.id == card_id)
        return stmt.with_for_update() if lock else stmt

    def card_by_key(self, key: str) -> sa.Select[Any]:
        return CARD_SELECT.where(self._mine, cards.c.idempotency_key == key)

    def keys_in(self, keys: Sequence[str]) -> sa.Select[Any]:
        return sa.select(cards.c.idempotency_key).where(
            self._mine, self.in_(cards.c.idempotency_key, keys)
        )

    def ready_routes(self) -> sa.Select[Any]:
        """Ready cards per aimed lane: an index-only walk of the claim index's ready part."""
        return (
            sa.select(cards.c.route, sa.func.count())
            .where(self._mine, cards.c.status == CardStatus.READY.value, cards.c.route != "")
            .group_by(cards.c.route)
        )

    def statuses_in(self, ids: Sequence[str]) -> sa.Select[Any]:
        return sa.select(cards.c.id, cards.c.status).where(self._mine, self.in_(cards.c.id, ids))

    def probe_params(self, lane: str, limit: int) -> dict[str, Any]:
        return {"tenant": self.tenant, "route": lane, "lim": limit}

    def update_seq(self, seq: int, values: dict[str, Any]) -> ReturningUpdate[Any]:
        return (
            sa.update(cards)
            .where(cards.c.seq == seq)
            .values(updated_at=db_now(), **values)
            .returning(*CARD_COLUMNS)
        )

    def fenced(
        self,
        card_id: str,
        token: int,
        values: dict[str, Any],
        *,
        live_for: float | None = None,
        owner: str | None = None,
    ) -> ReturningUpdate[Any]:
        """Update the card only while it is claimed under ``token``.

        ``live_for``: and only while its lease has more than that many seconds left by the
        database clock, checked in the same statement (the fence includes time).
        ``owner``: and only while that agent holds the lease.
        """
        where = [self._mine, cards.c.id == card_id, cards.c.status == CLAIMED]
        where.append(cards.c.token == token)
        if owner is not None:
            where.append(cards.c.lease_owner == owner)
        if live_for is not None:
            where.append(cards.c.lease_expires_at > db_now() + float(live_for))
        return (
            sa.update(cards)
            .where(*where)
            .values(updated_at=db_now(), **values)
            .returning(*CARD_COLUMNS)
        )

    def renewal_due(
        self, host: str, agents_: Sequence[str], now: float, ttl: float, card_timeout: float
    ) -> sa.Select[Any]:
        """Delivered, still-live leases of this host's ``agents_`` with under half ``ttl`` left,
        delivered within ``card_timeout``."""
        c = cards.c
        return (
            sa.select(c.id, c.token, c.lease_owner)
            .where(
                self._mine,
                c.host == host,
                c.status == CLAIMED,
                self.in_(c.lease_owner, list(agents_)),
                c.delivered_at.is_not(None),
                c.delivered_at > now - card_timeout,
                c.lease_expires_at > now,
                c.lease_expires_at < now + ttl / 2,
            )
            .with_for_update()
        )

    def release_dependents(self, card_id: str) -> sa.Update:
        """The cards that depend on ``card_id`` lose one unmet dependency."""
        dependents = sa.select(card_deps.c.card_id).where(
            card_deps.c.tenant_id == self.tenant, card_deps.c.dep_id == card_id
        )
        return (
            sa.update(cards)
            .where(self._mine, cards.c.id.in_(dependents))
            .values(unmet_deps=cards.c.unmet_deps - 1, updated_at=db_now())
        )

    def expired_leases(self) -> sa.Select[Any]:
        return (
            sa.select(*LEASE_COLUMNS)
            .where(cards.c.status == CLAIMED, cards.c.lease_expires_at <= db_now(), self._mine)
            .with_for_update(skip_locked=True)
        )

    def lease_of(self, card_id: str) -> sa.Select[Any]:
        return sa.select(*LEASE_COLUMNS).where(self._mine, cards.c.id == card_id)

    def insert_edge(self, card_id: str, dep_id: str) -> sa.Insert:
        return sa.insert(card_deps).values(tenant_id=self.tenant, card_id=card_id, dep_id=dep_id)

    def edges_from(self, ids: Sequence[str]) -> sa.Select[Any]:
        return sa.select(card_deps.c.card_id, card_deps.c.dep_id).where(
            card_deps.c.tenant_id == self.tenant, card_deps.c.card_id.in_(ids)
        )

    # --- events ----------------------------------------------------------------------------

    def event_row(
        self,
        host: str,
        card_id: str | None,
        kind: EventKind,
        agent: str | None = None,
        token: int | None = None,
        detail: str | None = None,
    ) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant,
            "host": host,
            "card_id": card_id,
            "kind": kind.value,
            "agent": agent,
            "token": token,
            "detail": detail,
        }

    # --- pause and agents ------------------------------------------------------------------

    def set_pause(self, paused: bool, reason: str | None, by: str) -> sa.Insert:
        values = {"paused": paused, "reason": reason, "paused_by": by, "changed_at": db_now()}
        return self.upsert(fleet_state, ["tenant_id"], {"tenant_id": self.tenant, **values})

    def upsert_agents(self) -> sa.Insert:
        return self.upsert(agents, ["tenant_id", "host", "agent"], None)

    def forget_agent(self, agent: str) -> sa.Delete:
        return sa.delete(agents).where(agents.c.tenant_id == self.tenant, agents.c.agent == agent)
