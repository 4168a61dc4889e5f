"""Every operation of the card store, and all of its SQL, in one place.

Read this file to know the data contract. The rules it keeps:

- **Claims are atomic.** A write transaction is ``BEGIN IMMEDIATE`` on SQLite (one writer at
  a time) and row locks with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent claimers
  skip each other's rows), so no card is ever under two live leases.
- **Claim order** for one agent: cards aimed at that agent, then at its class, then at
  anyone; within a lane higher priority first, then older first. Each lane is an equality
  probe on ``ix_cards_claim``; a batch asks each lane once for as many cards as agents want.
- **Fencing tokens** are per card and only grow: every claim sets ``token = token + 1``;
  release and reclaim never lower it. Lease-holder operations (deliver, renew, complete,
  fail, release) name the token; any other token is refused and changes nothing.
- **Database time** (``db_now``) for every timestamp, expiry and reclaim.
- **Every change writes an event** in the same transaction.
- ``unmet_deps`` on each card counts its dependencies that are not done; create and link
  raise it, complete lowers it on the dependents, so "ready to claim" is an index lookup.

``on_change`` (optional) is called with the kind of change ("created", "done", "failed",
"released", "reclaimed", "unblocked", "linked", "resumed", ...) after the commit: the hook
the dispatch engine uses to nudge a supervisor tick.
"""

from __future__ import annotations

import json
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from fleet_queue.cards import (
    DELIVERY_FAILED,
    AgentStatus,
    BulkResult,
    Card,
    CardStatus,
    Claim,
    ClaimRequest,
    Event,
    NewCard,
    PauseState,
    ReclaimedCard,
    epoch_to_datetime,
)
from fleet_queue.errors import (
    ConflictError,
    CycleError,
    NotFoundError,
    StaleTokenError,
    UsageError,
)
from fleet_queue.settings import Settings
from fleet_queue.store import migrate
from fleet_queue.store.engine import WRITE, db_now, is_sqlite, make_engine
from fleet_queue.store.rows import (
    agent_from_row,
    agent_to_params,
    card_from_row,
    event_from_row,
    pause_from_row,
)
from fleet_queue.store.tables import agents, card_deps, cards, events, fleet_state

if TYPE_CHECKING:
    import sqlite3

    import psycopg

log = logging.getLogger(__name__)

ChangeHook = Callable[[str], None]
ProgressHook = Callable[[int], None]

READY = CardStatus.READY.value
CLAIMED = CardStatus.CLAIMED.value
BLOCKED = CardStatus.BLOCKED.value
DONE = CardStatus.DONE.value
FAILED = CardStatus.FAILED.value

CHUNK = 2000
"""Rows per statement in bulk work (below SQLite's 32k host-parameter limit)."""

ANALYZE_AFTER = 5000
"""A bulk create at least this big refreshes PostgreSQL's statistics of the cards table."""

_CARD_COLUMNS = [c for c in cards.c if c.name not in {"seq", "route"}]
_CARD_SELECT = sa.select(cards.c.seq, *_CARD_COLUMNS)
_EVENT_COLUMNS = list(events.c)

# --- prebuilt hot-path statements (compiled once, cached by SQLAlchemy) ------------------

_LANE_PROBE = (
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

_TAKE = (
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

_TAKE_ONE = _TAKE.returning(cards.c.seq, *_CARD_COLUMNS)

_CARDS_BY_SEQ = sa.select(cards.c.seq, *_CARD_COLUMNS).where(
    cards.c.seq.in_(sa.bindparam("seqs", expanding=True))
)

_INSERT_EVENT = sa.insert(events).values(at=db_now())

# Per status: cards, of them with no unmet dependency, and the first created; every column
# read is in ix_cards_claim, so it is one pass over the index and never reads a table row.
_STATS_BY_STATUS = (
    sa.select(
        cards.c.status,
        sa.func.count(),
        sa.func.count().filter(cards.c.unmet_deps == 0),
        sa.func.min(cards.c.seq),
    )
    .where(cards.c.tenant_id == sa.bindparam("t"))
    .group_by(cards.c.status)
)

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


def _route(target_agent: str | None, target_class: str | None) -> str:
    """The claim lane of a card: one agent, one class, or anyone."""
    if target_agent:
        return f"a:{target_agent}"
    if target_class:
        return f"c:{target_class}"
    return ""


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _epoch(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    return value.timestamp()


def _names(ids: Iterable[str], limit: int = 5) -> str:
    ids = sorted(ids)
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


@dataclass(frozen=True)
class TickView:
    """One snapshot of what the supervisor tick decides from (see ``CardStore.tick_view``)."""

    pause: PauseState
    statuses: list[AgentStatus]
    now: datetime
    leased: set[str]


BOARD_LANES = ("ready", "waiting", "claimed", "delivered", "blocked", "done", "failed")
"""The board's columns: ``ready`` is claimable now, ``waiting`` has unfinished dependencies;
``claimed`` is leased but not yet typed into the pane, ``delivered`` is typed."""


@dataclass(frozen=True)
class BoardView:
    """One read of what the board shows (see ``CardStore.board_view``)."""

    now: datetime
    pause: PauseState
    counts: dict[str, int]
    """Cards per board lane (every card of the tenant, not only those listed)."""
    lanes: dict[str, list[Card]]


@dataclass
class _Tx:
    """One open write transaction and the change kinds to announce after its commit."""

    conn: Connection
    changes: list[str] = field(default_factory=list)


class CardStore:
    """The backlog of record, bound to one tenant; every method is one transaction."""

    def __init__(
        self,
        url: str,
        tenant: str = "default",
        host: str | None = None,
        *,
        max_attempts: int = 3,
        on_change: ChangeHook | None = None,
        migrate_schema: bool = True,
        engine: Engine | None = None,
    ) -> None:
        self.url = url
        self.tenant = tenant
        self.host = host or socket.gethostname()
        self.max_attempts = max_attempts
        self.on_change = on_change
        self.engine = engine or make_engine(url)
        self._sqlite = is_sqlite(self.engine)
        if migrate_schema:
            migrate.upgrade(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings, *, on_change: ChangeHook | None = None) -> CardStore:
        """The store of ``settings`` (tenant, host, max attempts), schema migrated to head.

        Unless another hook is given, a change that can make work dispatchable (a new
        card, a closed one, a released lease...) nudges a supervisor tick.
        """
        from fleet_queue.nudge import nudge_hook

        return cls(
            settings.effective_database_url,
            tenant=settings.tenant,
            host=settings.host,
            max_attempts=settings.max_attempts,
            on_change=on_change if on_change is not None else nudge_hook(settings),
        )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> CardStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        with self.engine.connect() as conn:
            conn.execution_options(**WRITE)
            tx = _Tx(conn)
            with conn.begin():
                yield tx
        self._announce(tx.changes)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _announce(self, kinds: list[str]) -> None:
        if self.on_change is None:
            return
        for kind in dict.fromkeys(kinds):
            try:
                self.on_change(kind)
            except Exception:  # a failed nudge must not undo a committed change
                log.exception("on_change hook failed for %s", kind)

    def _event(
        self,
        tx: _Tx,
        card_id: str | None,
        kind: str,
        *,
        agent: str | None = None,
        token: int | None = None,
        detail: str | None = None,
        host: str | None = None,
    ) -> None:
        self._events(tx, [self._event_row(card_id, kind, agent, token, detail, host)])

    def _event_row(
        self,
        card_id: str | None,
        kind: str,
        agent: str | None = None,
        token: int | None = None,
        detail: str | None = None,
        host: str | None = None,
    ) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant,
            "host": host or self.host,
            "card_id": card_id,
            "kind": kind,
            "agent": agent,
            "token": token,
            "detail": detail,
        }

    def _events(self, tx: _Tx, rows: Sequence[dict[str, Any]]) -> None:
        for chunk in _chunks(rows):
            tx.conn.execute(_INSERT_EVENT, list(chunk))

    def _now(self, conn: Connection) -> float:
        return float(conn.execute(sa.select(db_now())).scalar_one())

    def _row(self, conn: Connection, card_id: str, *, lock: bool = False) -> RowMapping | None:
        stmt = _CARD_SELECT.where(cards.c.tenant_id == self.tenant, cards.c.id == card_id)
        if lock:
            stmt = stmt.with_for_update()
        return conn.execute(stmt).mappings().first()

    def _must(self, conn: Connection, card_id: str, *, lock: bool = False) -> RowMapping:
        row = self._row(conn, card_id, lock=lock)
        if row is None:
            raise NotFoundError(f"no card {card_id!r} in tenant {self.tenant!r}")
        return row

    # --- create -------------------------------------------------------------------------

    def create(self, new: NewCard) -> Card:
        """Create one ready card; a repeated idempotency key returns the existing card."""
        try:
            with self._write() as tx:
                existing = self._by_key(tx.conn, new.idempotency_key)
                if existing is not None:
                    return card_from_row(existing)
                if self._row(tx.conn, new.id) is not None:
                    raise ConflictError(f"card {new.id!r} already exists")
                unmet = self._unmet_of(tx.conn, new.id, new.depends_on, set())
                self._insert_cards(tx, [(new, unmet)])
                tx.changes.append("created")
                return card_from_row(self._must(tx.conn, new.id))
        except IntegrityError:
            # A concurrent create won the race for the same key or id (PostgreSQL).
            with self._read() as conn:
                existing = self._by_key(conn, new.idempotency_key)
            if existing is not None:
                return card_from_row(existing)
            raise ConflictError(f"card {new.id!r} already exists") from None

    def create_many(
        self, new_cards: Iterable[NewCard], *, progress: ProgressHook | None = None
    ) -> BulkResult:
        """Create many cards in one transaction: all of them, or (on any refusal) none.

        Cards whose idempotency key is already stored are skipped and reported as existing;
        dependencies may point at cards in the same batch or already stored.
        """
        batch = list(new_cards)
        _refuse_batch_duplicates(batch)
        with self._write() as tx:
            known_keys = self._existing_keys(tx.conn, [c.idempotency_key for c in batch])
            skipped = [c.id for c in batch if c.idempotency_key in known_keys]
            batch = [c for c in batch if c.idempotency_key not in known_keys]
            taken = self._existing_ids(tx.conn, [c.id for c in batch])
            if taken:
                raise ConflictError(f"card(s) already exist: {_names(taken)}")
            in_batch = {c.id for c in batch}
            outside = {d for c in batch for d in c.depends_on if d not in in_batch}
            statuses = self._statuses(tx.conn, outside)
            missing = outside - statuses.keys()
            if missing:
                raise NotFoundError(f"unknown dependency card(s): {_names(missing)}")
            _refuse_batch_cycle(batch)
            rows = [
                (c, sum(1 for d in c.depends_on if d in in_batch or statuses[d] != DONE))
                for c in batch
            ]
            self._insert_cards(tx, rows, progress=progress)
            if batch:
                tx.changes.append("created")
        if len(batch) >= ANALYZE_AFTER and not self._sqlite:
            # keep the planner's picture of a freshly filled table right (claim plans)
            with self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "ANALYZE cards"
                )
        return BulkResult(created=len(batch), existing=tuple(skipped))

    def _by_key(self, conn: Connection, key: str | None) -> RowMapping | None:
        if key is None:
            return None
        stmt = _CARD_SELECT.where(cards.c.tenant_id == self.tenant, cards.c.idempotency_key == key)
        return conn.execute(stmt).mappings().first()

    def _existing_keys(self, conn: Connection, keys: list[str | None]) -> set[str]:
        wanted = [k for k in keys if k is not None]
        found: set[str] = set()
        for chunk in _chunks(wanted):
            stmt = sa.select(cards.c.idempotency_key).where(
                cards.c.tenant_id == self.tenant, self._in(cards.c.idempotency_key, chunk)
            )
            found.update(conn.execute(stmt).scalars())
        return found

    def _existing_ids(self, conn: Connection, ids: Sequence[str]) -> set[str]:
        return set(self._statuses(conn, ids))

    def _in(self, column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
        """``column IN (...)``; on PostgreSQL one array parameter instead of one per value."""
        if self._sqlite:
            return column.in_(values)
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.Text)))

    def _statuses(self, conn: Connection, ids: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in _chunks(sorted(ids)):
            stmt = sa.select(cards.c.id, cards.c.status).where(
                cards.c.tenant_id == self.tenant, self._in(cards.c.id, chunk)
            )
            out.update({row.id: row.status for row in conn.execute(stmt)})
        return out

    def _unmet_of(
        self, conn: Connection, card_id: str, deps: Sequence[str], in_batch: set[str]
    ) -> int:
        statuses = self._statuses(conn, deps)
        missing = set(deps) - statuses.keys() - in_batch
        if missing:
            raise NotFoundError(f"card {card_id!r} depends on unknown card(s): {_names(missing)}")
        return sum(1 for d in deps if statuses.get(d) != DONE)

    def _insert_cards(
        self,
        tx: _Tx,
        rows: Sequence[tuple[NewCard, int]],
        progress: ProgressHook | None = None,
    ) -> None:
        """Insert cards, their edges and their "created" events, in chunks.

        PostgreSQL takes them by COPY (several times faster than multi-row INSERT);
        SQLite by executemany of one prepared statement.
        """
        now = self._now(tx.conn)
        for chunk in _chunks(rows):
            card_rows = [self._card_params(c, unmet, now) for c, unmet in chunk]
            edges = [
                {"tenant_id": self.tenant, "card_id": c.id, "dep_id": d}
                for c, _ in chunk
                for d in c.depends_on
            ]
            created = [{**self._event_row(c.id, "created"), "at": now} for c, _ in chunk]
            self._bulk_insert(tx.conn, cards, card_rows)
            if edges:
                self._bulk_insert(tx.conn, card_deps, edges)
            self._bulk_insert(tx.conn, events, created)
            if progress is not None:
                progress(len(chunk))

    def _bulk_insert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Rows straight to the driver, JSON columns serialised here as SQLAlchemy would.

        SQLAlchemy's per-row parameter processing was half the time of a 100k-card
        import; PostgreSQL takes the rows by COPY, SQLite by one prepared executemany.
        """
        names = list(rows[0])
        json_cols = {c.name for c in table.c if isinstance(c.type, sa.JSON)}
        values = ([_as_json(row[n]) if n in json_cols else row[n] for n in names] for row in rows)
        columns = ", ".join(f'"{n}"' for n in names)
        if self._sqlite:
            marks = ", ".join("?" * len(names))
            raw = cast("sqlite3.Connection", conn.connection.dbapi_connection)
            raw.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", values)
            return
        dbapi = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)
        with dbapi.cursor() as cur, cur.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row_values in values:
                copy.write_row(row_values)

    def _card_params(self, new: NewCard, unmet: int, now: float) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant,
            "id": new.id,
            "title": new.title,
            "body": new.body,
            "phase": new.phase,
            "priority": new.priority,
            "status": READY,
            "route": _route(new.target_agent, new.target_class),
            "depends_on": list(new.depends_on),
            "unmet_deps": unmet,
            "target_agent": new.target_agent,
            "target_class": new.target_class,
            "created_host": self.host,
            "max_attempts": new.max_attempts or self.max_attempts,
            "idempotency_key": new.idempotency_key,
            "acceptance": new.acceptance,
            "created_at": now,
            "updated_at": now,
        }

    # --- read ---------------------------------------------------------------------------

    def get(self, card_id: str) -> Card:
        """One card; NotFoundError if the tenant has no such card."""
        with self._read() as conn:
            return card_from_row(self._must(conn, card_id))

    def now(self) -> datetime:
        """The database's clock (the one leases expire by)."""
        with self._read() as conn:
            value = epoch_to_datetime(self._now(conn))
        assert value is not None
        return value

    def lease_owners(self) -> set[str]:
        """Agents that hold a lease right now (claimed cards), for the supervisor's tick."""
        with self._read() as conn:
            return self._lease_owners(conn)

    def _lease_owners(self, conn: Connection) -> set[str]:
        stmt = sa.select(cards.c.lease_owner).where(
            cards.c.tenant_id == self.tenant, cards.c.status == CLAIMED
        )
        return {owner for owner in conn.execute(stmt).scalars() if owner}

    def tick_view(self) -> TickView:
        """What a supervisor tick reads before it claims, in one read transaction.

        Pause flag, agent rows, database clock and lease owners from one snapshot: one
        connection checkout and one BEGIN instead of four (the tick's fixed cost).
        """
        with self._read() as conn:
            pause = self._pause_state(conn)
            if pause.paused:
                return TickView(pause, [], self._clock(conn), set())
            rows = conn.execute(self._agents_stmt(None)).mappings()
            statuses = [agent_from_row(row) for row in rows]
            return TickView(pause, statuses, self._clock(conn), self._lease_owners(conn))

    def _clock(self, conn: Connection) -> datetime:
        value = epoch_to_datetime(self._now(conn))
        assert value is not None
        return value

    def delivery_view(self, card_id: str) -> tuple[Card | None, PauseState]:
        """The card (None if unknown) and the pause flag in one read: the delivery fence."""
        with self._read() as conn:
            row = self._row(conn, card_id)
            return (card_from_row(row) if row is not None else None), self._pause_state(conn)

    def dependents(self, card_id: str) -> list[str]:
        """Ids of the cards that depend on ``card_id``."""
        stmt = sa.select(card_deps.c.card_id).where(
            card_deps.c.tenant_id == self.tenant, card_deps.c.dep_id == card_id
        )
        with self._read() as conn:
            return sorted(conn.execute(stmt).scalars())

    # --- claim --------------------------------------------------------------------------

    def claim(
        self,
        agent: str,
        agent_class: str | None,
        host: str,
        lease_ttl: float,
        card_id: str | None = None,
    ) -> Claim | None:
        """Lease the best card for ``agent`` (None if there is none), or the card ``card_id``.

        A named card that cannot be claimed (not ready, dependencies open, aimed at another
        agent) is refused with ConflictError; an unknown one with NotFoundError.
        """
        request = ClaimRequest(agent=agent, agent_class=agent_class, host=host, lease_ttl=lease_ttl)
        if card_id is None:
            claims = self.claim_batch([request])
            return claims[0] if claims else None
        _check_ttl(lease_ttl)
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            _refuse_unclaimable(row, agent)
            return self._take(tx, [(request, row["seq"])])[0]

    def claim_batch(
        self, requests: Sequence[ClaimRequest], *, unless_paused: bool = False
    ) -> list[Claim]:
        """Lease at most one card to each requesting agent, all in one transaction.

        ``unless_paused`` (the supervisor's dispatch): read the pause flag inside the same
        transaction and claim nothing when it is up. The tick checked it when it began,
        but a pause set since then must not be met by a claim made after it.
        """
        first: dict[str, ClaimRequest] = {}
        for request in requests:
            first.setdefault(request.agent, request)
        unique = list(first.values())
        for request in unique:
            _check_ttl(request.lease_ttl)
        if not unique:
            return []
        with self._write() as tx:
            if unless_paused and self._pause_state(tx.conn).paused:
                return []
            picks = self._pick(tx.conn, unique)
            return self._take(tx, picks) if picks else []

    def _probe(self, conn: Connection, route: str, limit: int) -> list[int]:
        params = {"tenant": self.tenant, "route": route, "lim": limit}
        return list(conn.execute(_LANE_PROBE, params).scalars())

    def _lanes_with_work(self, conn: Connection, routes: list[str]) -> set[str]:
        stmt = _LANES_WITH_WORK[conn.dialect.name]
        value: Any = json.dumps(routes) if self._sqlite else routes
        return set(conn.execute(stmt, {"routes": value, "tenant": self.tenant}).scalars())

    def _pick(
        self, conn: Connection, requests: list[ClaimRequest]
    ) -> list[tuple[ClaimRequest, int]]:
        """Choose a card per agent: own lane, then class lane, then the common lane."""
        picks: list[tuple[ClaimRequest, int]] = []
        waiting: list[ClaimRequest] = []
        own_lanes = self._lanes_with_work(conn, [_route(r.agent, None) for r in requests])
        for request in requests:
            own = _route(request.agent, None)
            found = self._probe(conn, own, 1) if own in own_lanes else []
            if found:
                picks.append((request, found[0]))
            else:
                waiting.append(request)
        by_class: dict[str, list[ClaimRequest]] = {}
        anyone: list[ClaimRequest] = []
        for request in waiting:
            if request.agent_class:
                by_class.setdefault(request.agent_class, []).append(request)
            else:
                anyone.append(request)
        for agent_class, members in by_class.items():
            found = self._probe(conn, _route(None, agent_class), len(members))
            picks.extend(zip(members, found, strict=False))
            anyone.extend(members[len(found) :])
        if anyone:
            ordered = [r for r in requests if r in anyone]
            found = self._probe(conn, "", len(ordered))
            picks.extend(zip(ordered, found, strict=False))
        return picks

    def _take(self, tx: _Tx, picks: Sequence[tuple[ClaimRequest, int]]) -> list[Claim]:
        params = [
            {"b_seq": seq, "b_agent": r.agent, "b_host": r.host, "b_ttl": float(r.lease_ttl)}
            for r, seq in picks
        ]
        if len(params) == 1:  # one statement instead of two: the common single claim
            rows = tx.conn.execute(_TAKE_ONE, params[0]).mappings().all()
        else:
            tx.conn.execute(_TAKE, params)
            seqs = [seq for _, seq in picks]
            rows = tx.conn.execute(_CARDS_BY_SEQ, {"seqs": seqs}).mappings().all()
        by_seq = {row["seq"]: card_from_row(row) for row in rows}
        claims: list[Claim] = []
        for request, seq in picks:
            card = by_seq[seq]
            assert card.lease_expires_at is not None and card.lease_owner == request.agent
            claims.append(
                Claim(
                    card=card,
                    token=card.token,
                    agent=request.agent,
                    host=request.host,
                    expires_at=card.lease_expires_at,
                )
            )
        self._events(
            tx,
            [
                self._event_row(
                    c.card.id, "claimed", c.agent, c.token, f"attempt {c.card.attempts}", c.host
                )
                for c in claims
            ],
        )
        tx.changes.append("claimed")
        return claims

    # --- lease-holder operations (fenced by the token) -----------------------------------

    def _fenced(
        self,
        tx: _Tx,
        card_id: str,
        token: int,
        values: dict[str, Any],
        *,
        action: str,
    ) -> RowMapping:
        """Update the card only if it is claimed under ``token``; otherwise refuse, unchanged."""
        stmt = (
            sa.update(cards)
            .where(
                cards.c.tenant_id == self.tenant,
                cards.c.id == card_id,
                cards.c.status == CLAIMED,
                cards.c.token == token,
            )
            .values(updated_at=db_now(), **values)
            .returning(*_CARD_COLUMNS)
        )
        row = tx.conn.execute(stmt).mappings().first()
        if row is not None:
            return row
        current = self._must(tx.conn, card_id)
        raise StaleTokenError(_stale_message(current, token, action))

    def mark_delivered(self, card_id: str, token: int) -> Card:
        """Record that the card's text reached the agent's pane under this lease."""
        with self._write() as tx:
            row = self._fenced(tx, card_id, token, {"delivered_at": db_now()}, action="deliver")
            self._event(
                tx, card_id, "delivered", agent=row["lease_owner"], token=token, host=row["host"]
            )
            return card_from_row(row)

    def renew(self, card_id: str, token: int, ttl: float) -> Card:
        """Extend the lease to ``ttl`` seconds from now (database time)."""
        _check_ttl(ttl)
        expiry = db_now() + sa.literal(float(ttl), sa.Double)
        with self._write() as tx:
            row = self._fenced(tx, card_id, token, {"lease_expires_at": expiry}, action="renew")
            self._event(
                tx,
                card_id,
                "renewed",
                agent=row["lease_owner"],
                token=token,
                detail=f"ttl {ttl:g}s",
                host=row["host"],
            )
            return card_from_row(row)

    def renew_working(self, agents: Sequence[str], ttl: float, card_timeout: float) -> list[str]:
        """Extend the leases that this host's working agents hold; the renewed card ids.

        A real agent can work on one card far longer than a lease: without this its card
        would be reclaimed and typed to a second agent while the first is still on it. The
        host worker calls it for the agents it sees working (``busy`` heartbeat or fresh pane
        output). Only delivered leases of this host with less than half of ``ttl`` left are
        renewed, and only within ``card_timeout`` seconds of the delivery, so an agent that
        hangs while still looking busy gives its card back at most ``card_timeout + ttl``
        after it got it.
        """
        _check_ttl(ttl)
        if not agents:
            return []
        c = cards.c
        with self._write() as tx:
            now = self._now(tx.conn)
            due = (
                sa.select(c.id, c.token, c.lease_owner)
                .where(
                    c.tenant_id == self.tenant,
                    c.host == self.host,
                    c.status == CLAIMED,
                    self._in(c.lease_owner, list(agents)),
                    c.delivered_at.is_not(None),
                    c.delivered_at > now - card_timeout,
                    c.lease_expires_at < now + ttl / 2,
                )
                .with_for_update()
            )
            rows = tx.conn.execute(due).all()
            for card_id, token, _owner in rows:
                self._fenced(tx, card_id, token, {"lease_expires_at": now + ttl}, action="renew")
            detail = f"agent working; ttl {ttl:g}s"
            self._events(
                tx,
                [
                    self._event_row(card_id, "renewed", owner, token, detail)
                    for card_id, token, owner in rows
                ],
            )
        return [row[0] for row in rows]

    def complete(self, card_id: str, token: int, result: str | None = None) -> Card:
        """Mark the card done; its dependents lose one unmet dependency.

        Repeating the completion with the same token is a no-op that returns the card,
        so an agent that runs ``fleet card done`` twice does not fail the second time.
        """
        with self._write() as tx:
            try:
                row = self._fenced(
                    tx, card_id, token, _finish(DONE, result=result), action="complete"
                )
            except StaleTokenError:
                current = self._must(tx.conn, card_id)
                if current["status"] == DONE and current["token"] == token:
                    return card_from_row(current)
                raise
            tx.conn.execute(
                sa.update(cards)
                .where(
                    cards.c.tenant_id == self.tenant,
                    cards.c.id.in_(
                        sa.select(card_deps.c.card_id).where(
                            card_deps.c.tenant_id == self.tenant, card_deps.c.dep_id == card_id
                        )
                    ),
                )
                .values(unmet_deps=cards.c.unmet_deps - 1, updated_at=db_now())
            )
            self._event(
                tx,
                card_id,
                "done",
                agent=row["lease_owner"],
                token=token,
                detail=result,
                host=row["host"],
            )
            tx.changes.append("done")
            return card_from_row(row)

    def fail(self, card_id: str, token: int, reason: str) -> Card:
        """The lease holder gives up: the card is failed with ``reason`` (unblock requeues it)."""
        reason = _reason(reason)
        with self._write() as tx:
            row = self._fenced(tx, card_id, token, _finish(FAILED, reason=reason), action="fail")
            self._event(
                tx,
                card_id,
                "failed",
                agent=row["lease_owner"],
                token=token,
                detail=reason,
                host=row["host"],
            )
            tx.changes.append("failed")
            return card_from_row(row)

    def release(self, card_id: str, token: int, reason: str) -> Card:
        """Give the card back to ready (e.g. the delivery failed); not counted as an attempt.

        A reason that starts with ``DELIVERY_FAILED`` is a delivery failure. Once the card's
        delivery failures since its last ``delivered`` or ``unblocked`` event reach its
        ``max_attempts``, the card is blocked instead (reason: the count and the last error),
        so a card that can never be typed stops being claimed every tick. Releases for any
        other reason (paused, busy) never count.
        """
        reason = _reason(reason)
        with self._write() as tx:
            before = self._must(tx.conn, card_id, lock=True)
            values: dict[str, Any] = {
                **_unlease(),
                "status": READY,
                "attempts": cards.c.attempts - 1,
            }
            kind, detail = "released", reason
            if _held(before, token) and reason.startswith(DELIVERY_FAILED):
                failures = self._delivery_failures(tx.conn, card_id) + 1
                if failures >= before["max_attempts"]:
                    kind = "blocked"
                    detail = _delivery_blocked_reason(failures, before["max_attempts"], reason)
                    values.update(status=BLOCKED, reason=detail)
            row = self._fenced(tx, card_id, token, values, action="release")
            self._event(
                tx,
                card_id,
                kind,
                agent=before["lease_owner"],
                token=token,
                detail=detail,
                host=before["host"],
            )
            tx.changes.append(kind)
            return card_from_row(row)

    def _delivery_failures(self, conn: Connection, card_id: str) -> int:
        """Delivery-failure releases of the card since its last delivery or unblock."""
        mine = sa.and_(events.c.tenant_id == self.tenant, events.c.card_id == card_id)
        fresh_start = (
            sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0))
            .where(mine, events.c.kind.in_(["delivered", "unblocked"]))
            .scalar_subquery()
        )
        stmt = sa.select(sa.func.count()).where(
            mine,
            events.c.kind == "released",
            events.c.detail.startswith(DELIVERY_FAILED),
            events.c.id > fresh_start,
        )
        return int(conn.execute(stmt).scalar_one())

    # --- reclaim ------------------------------------------------------------------------

    def reclaim_expired(self) -> list[ReclaimedCard]:
        """Take back every lease past its expiry (database time).

        The card goes back to ready, or to failed once its attempts reached max_attempts.
        """
        expired = (
            sa.select(
                cards.c.seq,
                cards.c.id,
                cards.c.token,
                cards.c.lease_owner,
                cards.c.host,
                cards.c.attempts,
                cards.c.max_attempts,
            )
            .where(
                cards.c.status == CLAIMED,
                cards.c.lease_expires_at <= db_now(),
                cards.c.tenant_id == self.tenant,
            )
            .with_for_update(skip_locked=True)
        )
        with self._write() as tx:
            rows = tx.conn.execute(expired).mappings().all()
            return self._reclaim_rows(tx, rows, forced=False)

    def reclaim_card(self, card_id: str, reason: str = "reclaimed by operator") -> ReclaimedCard:
        """Take back one card's lease now, expired or not (an operator's recovery)."""
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            if row["status"] != CLAIMED:
                raise ConflictError(f"card {card_id!r} is {row['status']}, not claimed")
            stmt = sa.select(
                cards.c.seq,
                cards.c.id,
                cards.c.token,
                cards.c.lease_owner,
                cards.c.host,
                cards.c.attempts,
                cards.c.max_attempts,
            ).where(cards.c.tenant_id == self.tenant, cards.c.id == card_id)
            rows = tx.conn.execute(stmt).mappings().all()
            return self._reclaim_rows(tx, rows, forced=True, reason=reason)[0]

    def _reclaim_rows(
        self, tx: _Tx, rows: Sequence[RowMapping], *, forced: bool, reason: str | None = None
    ) -> list[ReclaimedCard]:
        out: list[ReclaimedCard] = []
        for row in rows:
            exhausted = not forced and row["attempts"] >= row["max_attempts"]
            if exhausted:
                why = f"lease expired on attempt {row['attempts']} of {row['max_attempts']}"
                values = _finish(FAILED, reason=why)
                outcome = CardStatus.FAILED
            else:
                why = reason or f"lease expired on attempt {row['attempts']}"
                values = {**_unlease(), "status": READY}
                outcome = CardStatus.READY
            tx.conn.execute(
                sa.update(cards)
                .where(cards.c.seq == row["seq"])
                .values(updated_at=db_now(), **values)
            )
            out.append(
                ReclaimedCard(
                    card_id=row["id"],
                    token=row["token"],
                    agent=row["lease_owner"],
                    host=row["host"],
                    attempts=row["attempts"],
                    outcome=outcome,
                    reason=why,
                )
            )
        self._events(
            tx,
            [
                self._event_row(
                    r.card_id,
                    "reclaimed" if r.outcome is CardStatus.READY else "failed",
                    r.agent,
                    r.token,
                    r.reason,
                    r.host,
                )
                for r in out
            ],
        )
        if out:
            tx.changes.append("reclaimed")
        return out

    # --- dependencies, block/unblock ----------------------------------------------------

    def link(self, card_id: str, depends_on: str) -> Card:
        """Make ``card_id`` depend on ``depends_on``; refuses a cycle and names it."""
        with self._write() as tx:
            if not self._sqlite:
                tx.conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                    {"k": f"fleet-link:{self.tenant}"},
                )
            row = self._must(tx.conn, card_id, lock=True)
            dep = self._must(tx.conn, depends_on)
            if row["status"] in (DONE, FAILED):
                raise ConflictError(
                    f"card {card_id!r} is {row['status']}; its dependencies cannot change"
                )
            if depends_on in (row["depends_on"] or []):
                return card_from_row(row)
            path = self._path(tx.conn, depends_on, card_id)
            if path is not None:
                raise CycleError(f"dependency cycle refused: {' -> '.join([card_id, *path])}")
            tx.conn.execute(
                sa.insert(card_deps),
                {"tenant_id": self.tenant, "card_id": card_id, "dep_id": depends_on},
            )
            unmet = 0 if dep["status"] == DONE else 1
            updated = (
                sa.update(cards)
                .where(cards.c.seq == row["seq"])
                .values(
                    depends_on=[*(row["depends_on"] or []), depends_on],
                    unmet_deps=cards.c.unmet_deps + unmet,
                    updated_at=db_now(),
                )
                .returning(*_CARD_COLUMNS)
            )
            result = tx.conn.execute(updated).mappings().one()
            self._event(tx, card_id, "linked", detail=f"depends on {depends_on}")
            tx.changes.append("linked")
            return card_from_row(result)

    def _path(self, conn: Connection, start: str, goal: str) -> list[str] | None:
        """A dependency path start -> ... -> goal, if one exists (breadth first)."""
        parent: dict[str, str | None] = {start: None}
        frontier = deque([start])
        while frontier:
            level = list(frontier)
            frontier.clear()
            for chunk in _chunks(level):
                stmt = sa.select(card_deps.c.card_id, card_deps.c.dep_id).where(
                    card_deps.c.tenant_id == self.tenant, card_deps.c.card_id.in_(chunk)
                )
                for edge in conn.execute(stmt):
                    if edge.dep_id in parent:
                        continue
                    parent[edge.dep_id] = edge.card_id
                    if edge.dep_id == goal:
                        return _unwind(parent, goal)
                    frontier.append(edge.dep_id)
        return [start, goal] if start == goal else None

    def block(self, card_id: str, reason: str = "blocked by operator") -> Card:
        """Park a ready or claimed card (its lease, if any, ends: the token goes stale)."""
        reason = _reason(reason)
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            if row["status"] == BLOCKED:
                return card_from_row(row)
            if row["status"] not in (READY, CLAIMED):
                raise ConflictError(
                    f"card {card_id!r} is {row['status']}; only ready or claimed "
                    "cards can be blocked"
                )
            values = {**_unlease(), "status": BLOCKED, "reason": reason}
            result = self._update_seq(tx, row["seq"], values)
            self._event(
                tx, card_id, "blocked", agent=row["lease_owner"], token=row["token"], detail=reason
            )
            tx.changes.append("blocked")
            return result

    def unblock(self, card_id: str) -> Card:
        """Return a blocked card to ready; a failed card too (requeued with attempts reset)."""
        with self._write() as tx:
            row = self._must(tx.conn, card_id, lock=True)
            if row["status"] not in (BLOCKED, FAILED):
                raise ConflictError(
                    f"card {card_id!r} is {row['status']}; only blocked or failed "
                    "cards can be unblocked"
                )
            values: dict[str, Any] = {"status": READY, "reason": None, "completed_at": None}
            if row["status"] == FAILED:
                values["attempts"] = 0
            result = self._update_seq(tx, row["seq"], values)
            self._event(tx, card_id, "unblocked", detail=f"was {row['status']}")
            tx.changes.append("unblocked")
            return result

    def _update_seq(self, tx: _Tx, seq: int, values: dict[str, Any]) -> Card:
        stmt = (
            sa.update(cards)
            .where(cards.c.seq == seq)
            .values(updated_at=db_now(), **values)
            .returning(*_CARD_COLUMNS)
        )
        return card_from_row(tx.conn.execute(stmt).mappings().one())

    # --- events, stats ------------------------------------------------------------------

    def record_event(
        self,
        card_id: str | None,
        kind: str,
        agent: str | None = None,
        token: int | None = None,
        detail: str | None = None,
    ) -> None:
        """Append an event the store did not make itself (e.g. "dropped" by a stale delivery)."""
        if not kind or len(kind) > 32:
            raise UsageError("event kind must be 1-32 characters")
        with self._write() as tx:
            self._event(tx, card_id, kind, agent=agent, token=token, detail=detail)

    def events(
        self,
        *,
        card_id: str | None = None,
        kind: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        after_id: int | None = None,
        limit: int | None = 1000,
    ) -> list[Event]:
        """Events in the order they happened, filtered by card, kind, time or id."""
        stmt = sa.select(*_EVENT_COLUMNS).where(events.c.tenant_id == self.tenant)
        if card_id is not None:
            stmt = stmt.where(events.c.card_id == card_id)
        if kind is not None:
            stmt = stmt.where(events.c.kind == kind)
        if since is not None:
            stmt = stmt.where(events.c.at >= _epoch(since))
        if until is not None:
            stmt = stmt.where(events.c.at <= _epoch(until))
        if after_id is not None:
            stmt = stmt.where(events.c.id > after_id)
        stmt = stmt.order_by(events.c.id)
        if limit is not None:
            # the newest ``limit`` events, still oldest first
            stmt = sa.select(
                stmt.order_by(None).order_by(events.c.id.desc()).limit(limit).subquery()
            )
            stmt = stmt.order_by(sa.column("id"))
        with self._read() as conn:
            return [event_from_row(row) for row in conn.execute(stmt).mappings()]

    def stats(self) -> dict[str, Any]:
        """Counts by status, oldest ready age, expired leases, last-minute throughput, pause.

        The card counts are one aggregate over the claim index (no table row is read);
        the oldest ready card is the ready card created first (the lowest ``seq``), whose
        ``created_at`` is one primary-key lookup; expired leases are a probe of the lease index.
        """
        with self._read() as conn:
            now = self._now(conn)
            counts = {s.value: 0 for s in CardStatus}
            ready_now, oldest_seq = 0, None
            for status, count, no_unmet, first_seq in conn.execute(
                _STATS_BY_STATUS, {"t": self.tenant}
            ):
                counts[status] = count
                if status == READY:
                    ready_now, oldest_seq = no_unmet, first_seq
            oldest = None
            if oldest_seq is not None:
                oldest = conn.execute(
                    sa.select(cards.c.created_at).where(cards.c.seq == oldest_seq)
                ).scalar_one()
            expired = conn.execute(
                sa.select(sa.func.count()).where(
                    cards.c.status == CLAIMED,
                    cards.c.lease_expires_at <= now,
                    cards.c.tenant_id == self.tenant,
                )
            ).scalar_one()
            recent_kinds = (
                sa.select(events.c.kind, sa.func.count())
                .where(
                    events.c.tenant_id == self.tenant,
                    events.c.kind.in_(["claimed", "done", "failed"]),
                    events.c.at >= now - 60.0,
                )
                .group_by(events.c.kind)
            )
            recent: dict[str, int] = {row[0]: row[1] for row in conn.execute(recent_kinds)}
            pause = self._pause_state(conn)
        return {
            "tenant": self.tenant,
            "counts": counts,
            "total": sum(counts.values()),
            "ready_to_claim": ready_now,
            "oldest_ready_age": None if oldest is None else round(now - oldest, 3),
            "expired_leases": expired,
            "claims_last_minute": recent.get("claimed", 0),
            "completions_last_minute": recent.get("done", 0),
            "failures_last_minute": recent.get("failed", 0),
            "paused": pause.paused,
            "now": epoch_to_datetime(now).isoformat(),  # type: ignore[union-attr]
        }

    # --- pause ----------------------------------------------------------------------------

    def pause(self, reason: str, by: str) -> PauseState:
        """Raise the fleet-wide pause flag: the supervisor dispatches nothing while it is up."""
        return self._set_pause(True, _reason(reason), by)

    def resume(self, by: str) -> PauseState:
        """Lower the pause flag."""
        return self._set_pause(False, None, by)

    def pause_state(self) -> PauseState:
        with self._read() as conn:
            return self._pause_state(conn)

    def _pause_state(self, conn: Connection) -> PauseState:
        stmt = sa.select(fleet_state).where(fleet_state.c.tenant_id == self.tenant)
        return pause_from_row(conn.execute(stmt).mappings().first())

    def _set_pause(self, paused: bool, reason: str | None, by: str) -> PauseState:
        values = {"paused": paused, "reason": reason, "paused_by": by, "changed_at": db_now()}
        with self._write() as tx:
            stmt = self._upsert(fleet_state, ["tenant_id"], {"tenant_id": self.tenant, **values})
            tx.conn.execute(stmt)
            kind = "paused" if paused else "resumed"
            self._event(tx, None, kind, agent=by, detail=reason)
            tx.changes.append(kind)
            return self._pause_state(tx.conn)

    # --- agent status rows ------------------------------------------------------------------

    def upsert_agent_statuses(self, rows: Sequence[AgentStatus]) -> None:
        """Write what a host saw of its agents (one row per tenant, host and agent)."""
        if not rows:
            return
        params = [agent_to_params(r) for r in rows]
        with self._write() as tx:
            stmt = self._upsert(agents, ["tenant_id", "host", "agent"], None)
            tx.conn.execute(stmt, params)

    def forget_agent(self, agent: str) -> int:
        """Drop an agent's status rows (it left the roster); how many were dropped."""
        with self._write() as tx:
            stmt = sa.delete(agents).where(
                agents.c.tenant_id == self.tenant, agents.c.agent == agent
            )
            return tx.conn.execute(stmt).rowcount or 0

    def agent_statuses(self, host: str | None = None) -> list[AgentStatus]:
        with self._read() as conn:
            return [agent_from_row(row) for row in conn.execute(self._agents_stmt(host)).mappings()]

    def _agents_stmt(self, host: str | None) -> sa.Select[Any]:
        stmt = sa.select(agents).where(agents.c.tenant_id == self.tenant)
        if host is not None:
            stmt = stmt.where(agents.c.host == host)
        return stmt.order_by(agents.c.host, agents.c.agent)

    def _upsert(self, table: sa.Table, keys: list[str], values: dict[str, Any] | None) -> sa.Insert:
        """INSERT ... ON CONFLICT DO UPDATE for either backend."""
        dialect_insert = sqlite.insert if self._sqlite else postgresql.insert
        stmt = dialect_insert(table)
        if values is not None:
            stmt = stmt.values(**values)
        elif "updated_at" in table.c:
            stmt = stmt.values(updated_at=db_now())
        update = {c.name: stmt.excluded[c.name] for c in table.c if c.name not in keys}
        return stmt.on_conflict_do_update(index_elements=keys, set_=update)

    def list(
        self,
        *,
        status: CardStatus | str | Sequence[CardStatus | str] | None = None,
        phase: str | None = None,
        target_agent: str | None = None,
        target_class: str | None = None,
        ready_only: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Card]:
        """Cards of this tenant, best first (priority, then age). ``ready_only``: claimable now."""
        stmt = _CARD_SELECT.where(cards.c.tenant_id == self.tenant)
        if status is not None:
            wanted = [status] if isinstance(status, str | CardStatus) else list(status)
            stmt = stmt.where(cards.c.status.in_([CardStatus(s).value for s in wanted]))
        if ready_only:
            stmt = stmt.where(cards.c.status == READY, cards.c.unmet_deps == 0)
        if phase is not None:
            stmt = stmt.where(cards.c.phase == phase)
        if target_agent is not None:
            stmt = stmt.where(cards.c.target_agent == target_agent)
        if target_class is not None:
            stmt = stmt.where(cards.c.target_class == target_class)
        stmt = stmt.order_by(cards.c.priority.desc(), cards.c.seq).offset(offset)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return [card_from_row(row) for row in conn.execute(stmt).mappings()]

    def board_view(self, open_limit: int, recent_limit: int) -> BoardView:
        """What the board shows, in one read: the count of every lane and its cards.

        ``ready`` and ``waiting`` in claim order (priority, then age), ``claimed`` and
        ``delivered`` oldest claim first, ``blocked`` newest change first, each at most
        ``open_limit``; ``done`` and ``failed`` the ``recent_limit`` most recently finished.
        """
        c = cards.c
        tenant = c.tenant_id == self.tenant
        claim_order = (c.priority.desc(), c.seq)
        lane_queries = {
            "ready": (sa.and_(c.status == READY, c.unmet_deps == 0), claim_order, open_limit),
            "waiting": (sa.and_(c.status == READY, c.unmet_deps > 0), claim_order, open_limit),
            "claimed": (
                sa.and_(c.status == CLAIMED, c.delivered_at.is_(None)),
                (c.claimed_at, c.seq),
                open_limit,
            ),
            "delivered": (
                sa.and_(c.status == CLAIMED, c.delivered_at.is_not(None)),
                (c.claimed_at, c.seq),
                open_limit,
            ),
            "blocked": (c.status == BLOCKED, (c.updated_at.desc(), c.seq.desc()), open_limit),
            "done": (c.status == DONE, (c.completed_at.desc(), c.seq.desc()), recent_limit),
            "failed": (c.status == FAILED, (c.completed_at.desc(), c.seq.desc()), recent_limit),
        }
        by_status = (
            sa.select(
                c.status,
                sa.func.count(),
                sa.func.sum(sa.case((c.unmet_deps > 0, 1), else_=0)),
                sa.func.sum(sa.case((c.delivered_at.is_not(None), 1), else_=0)),
            )
            .where(tenant)
            .group_by(c.status)
        )
        with self._read() as conn:
            now = self._clock(conn)
            pause = self._pause_state(conn)
            counts = dict.fromkeys(BOARD_LANES, 0)
            for status, total, waiting, delivered in conn.execute(by_status):
                if status == READY:
                    counts["ready"], counts["waiting"] = total - waiting, waiting
                elif status == CLAIMED:
                    counts["claimed"], counts["delivered"] = total - delivered, delivered
                else:
                    counts[status] = total
            lanes = {}
            for lane, (where, order, limit) in lane_queries.items():
                stmt = _CARD_SELECT.where(tenant, where).order_by(*order).limit(max(limit, 0))
                lanes[lane] = [card_from_row(row) for row in conn.execute(stmt).mappings()]
        return BoardView(now=now, pause=pause, counts=counts, lanes=lanes)

    # --- schema -----------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        return migrate.current_revision(self.engine)


# --- helpers without SQL state -----------------------------------------------------------


def _as_json(value: Any) -> str:
    """``json.dumps``, with the two values most cards carry (no deps, no acceptance) free."""
    if value is None:
        return "null"
    if isinstance(value, list) and not value:
        return "[]"
    return json.dumps(value)


def _unlease() -> dict[str, Any]:
    return {"lease_owner": None, "lease_expires_at": None, "host": None}


def _finish(status: str, *, result: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """A card leaving its lease for good; owner and host stay as a record of who held it."""
    values: dict[str, Any] = {"status": status, "completed_at": db_now(), "lease_expires_at": None}
    if result is not None:
        values["result"] = result
    if reason is not None:
        values["reason"] = reason
    return values


def _reason(reason: str) -> str:
    from fleet_queue.sanitize import sanitize_text

    text = sanitize_text(str(reason or "")).strip()
    if not text:
        raise UsageError("a reason is required")
    return text


def _held(row: RowMapping, token: int) -> bool:
    """The card is claimed under ``token`` (what ``_fenced`` will require)."""
    return bool(row["status"] == CLAIMED and row["token"] == token)


def _delivery_blocked_reason(failures: int, max_attempts: int, reason: str) -> str:
    error = reason.removeprefix(DELIVERY_FAILED).lstrip(": ") or "no detail"
    times = "time" if failures == 1 else "times"
    return (
        f"delivery failed {failures} {times} since the last delivery or unblock"
        f" (max_attempts {max_attempts}); last error: {error}"
    )


def _check_ttl(ttl: float) -> None:
    if not isinstance(ttl, int | float) or ttl < 0:
        raise UsageError(f"lease ttl must be a number of seconds >= 0, not {ttl!r}")


def _stale_message(row: RowMapping, token: int, action: str) -> str:
    card_id = row["id"]
    if row["status"] == CLAIMED:
        return (
            f"stale token {token} for card {card_id!r}: it is claimed under token {row['token']}"
            f" by {row['lease_owner']}; cannot {action}"
        )
    return (
        f"stale token {token} for card {card_id!r}: it is {row['status']} (token {row['token']});"
        f" cannot {action}"
    )


def _refuse_unclaimable(row: RowMapping, agent: str) -> None:
    card_id = row["id"]
    if row["status"] != READY:
        raise ConflictError(f"card {card_id!r} is {row['status']}, not ready")
    if row["unmet_deps"]:
        raise ConflictError(
            f"card {card_id!r} waits for {row['unmet_deps']} unfinished dependencies"
        )
    if row["target_agent"] and row["target_agent"] != agent:
        raise ConflictError(f"card {card_id!r} is for agent {row['target_agent']}, not {agent}")


def _refuse_batch_duplicates(batch: Sequence[NewCard]) -> None:
    seen: set[str] = set()
    dup_ids = {c.id for c in batch if c.id in seen or seen.add(c.id)}  # type: ignore[func-returns-value]
    if dup_ids:
        raise ConflictError(f"duplicate card id(s) in the batch: {_names(dup_ids)}")
    keys: set[str] = set()
    dup_keys = {
        c.idempotency_key
        for c in batch
        if c.idempotency_key is not None
        and (c.idempotency_key in keys or keys.add(c.idempotency_key))  # type: ignore[func-returns-value]
    }
    if dup_keys:
        raise ConflictError(f"duplicate idempotency key(s) in the batch: {_names(dup_keys)}")


def _refuse_batch_cycle(batch: Sequence[NewCard]) -> None:
    """Kahn's algorithm on the batch's own edges; name one cycle if the sort gets stuck."""
    ids = {c.id for c in batch}
    deps = {c.id: [d for d in c.depends_on if d in ids] for c in batch}
    indegree = {cid: len(ds) for cid, ds in deps.items()}
    users: dict[str, list[str]] = {}
    for cid, ds in deps.items():
        for d in ds:
            users.setdefault(d, []).append(cid)
    queue = deque(cid for cid, n in indegree.items() if n == 0)
    done = 0
    while queue:
        cid = queue.popleft()
        done += 1
        for user in users.get(cid, ()):
            indegree[user] -= 1
            if indegree[user] == 0:
                queue.append(user)
    if done == len(ids):
        return
    stuck = {cid for cid, n in indegree.items() if n > 0}
    start = min(stuck)
    path, seen = [start], {start}
    while True:
        nxt = min(d for d in deps[path[-1]] if d in stuck)
        if nxt in seen:
            cycle = [*path[path.index(nxt) :], nxt]
            raise CycleError(f"dependency cycle refused: {' -> '.join(cycle)}")
        path.append(nxt)
        seen.add(nxt)


def _unwind(parent: dict[str, str | None], goal: str) -> list[str]:
    path = [goal]
    node = parent[goal]
    while node is not None:
        path.append(node)
        node = parent[node]
    return path[::-1]
