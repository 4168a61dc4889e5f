"""Cards into the backlog: create one, create many at once, and link a dependency.

``unmet_deps`` on each card counts its dependencies that are not done; create and link
raise it, complete lowers it on the dependents, so "ready to claim" is an index lookup.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from fleet_queue.cards import BulkResult, Card, EventKind, NewCard
from fleet_queue.errors import ConflictError, CycleError, NotFoundError
from fleet_queue.limits import check_card_size
from fleet_queue.store import rules
from fleet_queue.store.read_statements import DONE, FAILED
from fleet_queue.store.rows import card_from_row
from fleet_queue.store.statements import chunks, one_more_dependency, route
from fleet_queue.store.tables import card_deps, cards, events
from fleet_queue.store.transactions import ProgressHook, StoreBase, Tx, driver_errors

ANALYZE_AFTER = 5000
"""A bulk create at least this big refreshes PostgreSQL's statistics of the cards table."""


class Intake(StoreBase):
    """Create and link: the backlog's way in."""

    def create(self, new: NewCard) -> Card:
        """Create one ready card; a repeated idempotency key returns the existing card."""
        check_card_size(new, self.max_card_bytes)
        try:
            with self._write() as tx:
                existing = self._by_key(tx.conn, new.idempotency_key)
                if existing is not None:
                    return card_from_row(existing)
                if self._row(tx.conn, new.id) is not None:
                    raise ConflictError(f"card {new.id!r} already exists")
                unmet = self._unmet_of(tx.conn, new.id, new.depends_on)
                self._insert_cards(tx, [(new, unmet)])
                tx.changes.append(EventKind.CREATED)
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
        for new in batch:
            check_card_size(new, self.max_card_bytes)
        rules.refuse_batch_duplicates(batch)
        with self._write() as tx:
            known_keys = self._existing_keys(tx.conn, [c.idempotency_key for c in batch])
            skipped = [c.id for c in batch if c.idempotency_key in known_keys]
            batch = [c for c in batch if c.idempotency_key not in known_keys]
            taken = self._statuses(tx.conn, [c.id for c in batch])
            if taken:
                raise ConflictError(f"card(s) already exist: {rules.names(taken)}")
            in_batch = {c.id for c in batch}
            outside = {d for c in batch for d in c.depends_on if d not in in_batch}
            statuses = self._statuses(tx.conn, outside)
            missing = outside - statuses.keys()
            if missing:
                raise NotFoundError(f"unknown dependency card(s): {rules.names(missing)}")
            rules.refuse_batch_cycle(batch)
            rows = [
                (c, sum(1 for d in c.depends_on if d in in_batch or statuses[d] != DONE))
                for c in batch
            ]
            self._insert_cards(tx, rows, progress=progress)
            if batch:
                tx.changes.append(EventKind.CREATED)
        analyze = self.sql.analyze_cards()
        if len(batch) >= ANALYZE_AFTER and analyze is not None:
            with driver_errors(), self.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(analyze)
        return BulkResult(created=len(batch), existing=tuple(skipped))

    def _by_key(self, conn: Connection, key: str | None) -> RowMapping | None:
        if key is None:
            return None
        return conn.execute(self.sql.card_by_key(key)).mappings().first()

    def _existing_keys(self, conn: Connection, keys: list[str | None]) -> set[str]:
        wanted = [k for k in keys if k is not None]
        found: set[str] = set()
        for chunk in chunks(wanted):
            found.update(conn.execute(self.sql.keys_in(chunk)).scalars())
        return found

    def ready_lanes(self) -> dict[str, int]:
        """Ready cards per claim lane aimed at someone (``a:<agent>``, ``c:<class>``)."""
        with self._read() as conn:
            return {str(r[0]): int(r[1]) for r in conn.execute(self.sql.ready_routes())}

    def card_statuses(self, ids: Iterable[str]) -> dict[str, str]:
        """The status of each of ``ids`` that exists (the board marks failed dependencies)."""
        with self._read() as conn:
            return self._statuses(conn, ids)

    def _statuses(self, conn: Connection, ids: Iterable[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for chunk in chunks(sorted(ids)):
            out.update({row.id: row.status for row in conn.execute(self.sql.statuses_in(chunk))})
        return out

    def _unmet_of(self, conn: Connection, card_id: str, deps: Sequence[str]) -> int:
        statuses = self._statuses(conn, deps)
        missing = set(deps) - statuses.keys()
        if missing:
            raise NotFoundError(
                f"card {card_id!r} depends on unknown card(s): {rules.names(missing)}"
            )
        return sum(1 for d in deps if statuses.get(d) != DONE)

    def _insert_cards(
        self,
        tx: Tx,
        rows: Sequence[tuple[NewCard, int]],
        progress: ProgressHook | None = None,
    ) -> None:
        """Insert cards, their edges and their "created" events, in chunks.

        PostgreSQL takes them by COPY (several times faster than multi-row INSERT);
        SQLite by executemany of one prepared statement.
        """
        now = self._now(tx.conn)
        for chunk in chunks(rows):
            card_rows = [self._card_params(c, unmet, now) for c, unmet in chunk]
            edges = [
                {"tenant_id": self.tenant, "card_id": c.id, "dep_id": d}
                for c, _ in chunk
                for d in c.depends_on
            ]
            created = [
                {**self.sql.event_row(self.host, c.id, EventKind.CREATED), "at": now}
                for c, _ in chunk
            ]
            self.sql.bulk_insert(tx.conn, cards, card_rows)
            if edges:
                self.sql.bulk_insert(tx.conn, card_deps, edges)
            self.sql.bulk_insert(tx.conn, events, created)
            if progress is not None:
                progress(len(chunk))

    def _card_params(self, new: NewCard, unmet: int, now: float) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant,
            "id": new.id,
            "title": new.title,
            "body": new.body,
            "phase": new.phase,
            "priority": new.priority,
            "status": "ready",
            "route": route(new.target_agent, new.target_class),
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

    def link(self, card_id: str, depends_on: str) -> Card:
        """Make ``card_id`` depend on ``depends_on``; refuses a cycle and names it."""
        with self._write() as tx:
            lock = self.sql.link_lock()
            if lock is not None:
                tx.conn.execute(lock)
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
            tx.conn.execute(self.sql.insert_edge(card_id, depends_on))
            values = one_more_dependency(
                [*(row["depends_on"] or []), depends_on], unmet=dep["status"] != DONE
            )
            result = tx.conn.execute(self.sql.update_seq(row["seq"], values)).mappings().one()
            self._event(tx, card_id, EventKind.LINKED, detail=f"depends on {depends_on}")
            tx.changes.append(EventKind.LINKED)
            return card_from_row(result)

    def _path(self, conn: Connection, start: str, goal: str) -> list[str] | None:
        """A dependency path start -> ... -> goal, if one exists (breadth first)."""
        parent: dict[str, str | None] = {start: None}
        frontier = deque([start])
        while frontier:
            level = list(frontier)
            frontier.clear()
            for chunk in chunks(level):
                for edge in conn.execute(self.sql.edges_from(chunk)):
                    if edge.dep_id in parent:
                        continue
                    parent[edge.dep_id] = edge.card_id
                    if edge.dep_id == goal:
                        return rules.unwind(parent, goal)
                    frontier.append(edge.dep_id)
        return [start, goal] if start == goal else None
