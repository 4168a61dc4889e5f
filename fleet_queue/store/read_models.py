"""What the store shows: one card, lists, events, stats, the board and the tick's view.
Each read is one read transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from fleet_queue.cards import Card, CardStatus, Event, EventKind, epoch_to_datetime
from fleet_queue.errors import UsageError
from fleet_queue.fleet_status import AgentStatus, PauseState
from fleet_queue.store import rules
from fleet_queue.store.read_statements import (
    BOARD_LANES,
    CLAIMED,
    LANE_DEPTH,
    LANES_WITH_CARDS,
    READY,
    STATS_BY_STATUS,
)
from fleet_queue.store.rows import agent_from_row, card_from_row, event_from_row
from fleet_queue.store.tables import agents as agent_table
from fleet_queue.store.transactions import StoreBase


@dataclass(frozen=True)
class TickView:
    """One snapshot of what the supervisor tick decides from (see ``CardStore.tick_view``)."""

    pause: PauseState
    now: datetime
    leased: set[str]
    held: dict[str, str] = field(default_factory=dict)
    """Agents paused by name, with who paused them and why (``paused_agents``)."""
    lanes: dict[str, int] = field(default_factory=dict)
    """Claim lanes holding a claimable card (``cards.route``), with how many: counted up to
    the tick's cap for a class's or everyone's lane, 1 for an agent's own (it takes one)."""


@dataclass(frozen=True)
class BoardView:
    """One read of what the board shows (see ``CardStore.board_view``)."""

    now: datetime
    pause: PauseState
    counts: dict[str, int]
    """Cards per board lane (every card of the tenant, not only those listed)."""
    lanes: dict[str, list[Card]]


class ReadModels(StoreBase):
    """The store's reads (none of them changes anything)."""

    def get(self, card_id: str) -> Card:
        """One card; NotFoundError if the tenant has no such card."""
        with self._read() as conn:
            return card_from_row(self._must(conn, card_id))

    def now(self) -> datetime:
        """The database's clock (the one leases expire by)."""
        with self._read() as conn:
            return self._clock(conn)

    def lease_owners(self) -> set[str]:
        """Agents that hold a lease right now (claimed cards), for the supervisor's tick."""
        with self._read() as conn:
            return self._lease_owners(conn)

    def _lease_owners(self, conn: Connection) -> set[str]:
        return {owner for owner in conn.execute(self.sql.lease_owners()).scalars() if owner}

    def tick_view(self, cap: int) -> TickView:
        """What a supervisor tick reads before it chooses agents, in one read transaction.

        Pause flag, database clock, lease owners, agents paused by name and the lanes with
        claimable cards (a shared lane counted up to ``cap``, the most agents that could
        take from it) from one snapshot. No agent row: the tick reads those it needs
        (``tick_agents``), and none when no lane has work, the usual nudged tick.
        """
        with self._read() as conn:
            pause = self._pause_state(conn)
            if pause.paused:
                return TickView(pause, self._clock(conn), set())
            params = {"tenant": self.tenant}
            lanes = {route: 1 for route in conn.execute(LANES_WITH_CARDS, params).scalars()}
            for route in lanes:
                if not route.startswith("a:"):  # a class's or everyone's: how deep
                    depth = conn.execute(LANE_DEPTH, {**params, "route": route, "cap": cap})
                    lanes[route] = int(depth.scalar_one())
            if not lanes:
                return TickView(pause, self._clock(conn), set())
            return TickView(
                pause,
                self._clock(conn),
                self._lease_owners(conn),
                self._agent_holds(conn),
                lanes,
            )

    def tick_agents(self, names: Sequence[str]) -> list[AgentStatus]:
        """The status rows of these agents only (every host's): a tick with one card to
        give reads a handful of rows, not the whole fleet's."""
        if not names:
            return []
        stmt = self.sql.agent_rows(None).where(self.sql.in_(agent_table.c.agent, list(names)))
        with self._read() as conn:
            return [agent_from_row(row) for row in conn.execute(stmt).mappings()]

    def paused_agents(self) -> dict[str, str]:
        """Agents paused by name (``fleet agent pause``): name -> ``by <actor>: <reason>``."""
        with self._read() as conn:
            return self._agent_holds(conn)

    def dependents(self, card_id: str) -> list[str]:
        """Ids of the cards that depend on ``card_id``."""
        with self._read() as conn:
            return sorted(conn.execute(self.sql.dependents(card_id)).scalars())

    # --- events and stats ---------------------------------------------------------------

    def record_event(
        self,
        card_id: str | None,
        kind: EventKind | str,
        agent: str | None = None,
        token: int | None = None,
        detail: str | None = None,
    ) -> None:
        """Append an event the store did not make itself (e.g. "dropped" by a stale delivery).

        ``kind`` must be an :class:`EventKind`; another name is refused with UsageError."""
        if not kind:
            raise UsageError("an event kind is required")
        event_kind = EventKind.parse(kind)
        with self._write() as tx:
            self._event(tx, card_id, event_kind, agent=agent, token=token, detail=detail)

    def events(
        self,
        *,
        card_id: str | None = None,
        kind: EventKind | str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        after_id: int | None = None,
        limit: int | None = 1000,
    ) -> list[Event]:
        """Events in the order they happened, filtered by card, kind, time or id."""
        stmt = self.sql.event_list(
            card_id=card_id,
            kind=None if kind is None else EventKind.parse(kind),
            since=rules.epoch(since),
            until=rules.epoch(until),
            after_id=after_id,
            limit=limit,
        )
        with self._read() as conn:
            return [event_from_row(row) for row in conn.execute(stmt).mappings()]

    def events_after(
        self, after_id: int, kinds: Sequence[EventKind], limit: int = 1000
    ) -> list[Event]:
        """The oldest ``limit`` events of ``kinds`` with an id above ``after_id``, in order:
        a durable cursor (the chat notices) reads on from where it stopped."""
        with self._read() as conn:
            rows = conn.execute(self.sql.events_after(after_id, kinds, limit)).mappings()
            return [event_from_row(row) for row in rows]

    def last_event_id(self) -> int:
        """The newest event's id (0 with none): where a new cursor starts."""
        with self._read() as conn:
            return int(conn.execute(self.sql.last_event_id()).scalar() or 0)

    def stats(self) -> dict[str, Any]:
        """Counts by status, oldest ready age, expired leases, last-minute throughput, pause.

        The card counts are one aggregate over the claim index (no table row is read);
        the oldest ready card is the ready card created first (the lowest ``seq``), whose
        ``created_at`` is one primary-key lookup; expired leases are a probe of the lease index.
        """
        closing = [EventKind.CLAIMED, EventKind.DONE, EventKind.FAILED]
        with self._read() as conn:
            now = self._now(conn)
            counts = {s.value: 0 for s in CardStatus}
            ready_now, oldest_seq = 0, None
            for status, count, no_unmet, first_seq in conn.execute(
                STATS_BY_STATUS, {"t": self.tenant}
            ):
                counts[status] = count
                if status == READY:
                    ready_now, oldest_seq = no_unmet, first_seq
            oldest = None
            if oldest_seq is not None:
                oldest = conn.execute(self.sql.created_at_of(oldest_seq)).scalar_one()
            expired = conn.execute(self.sql.expired_count(now)).scalar_one()
            recent_kinds = self.sql.recent_kinds(now - 60.0, closing)
            recent: dict[str, int] = {row[0]: row[1] for row in conn.execute(recent_kinds)}
            pause = self._pause_state(conn)
        return {
            "tenant": self.tenant,
            "counts": counts,
            "total": sum(counts.values()),
            "ready_to_claim": ready_now,
            "oldest_ready_age": None if oldest is None else round(now - oldest, 3),
            "expired_leases": expired,
            "claims_last_minute": recent.get(EventKind.CLAIMED, 0),
            "completions_last_minute": recent.get(EventKind.DONE, 0),
            "failures_last_minute": recent.get(EventKind.FAILED, 0),
            "paused": pause.paused,
            "now": epoch_to_datetime(now).isoformat(),  # type: ignore[union-attr]
        }

    def board_view(self, open_limit: int, recent_limit: int) -> BoardView:
        """What the board shows, in one read: the count of every lane and its cards.

        ``ready`` and ``waiting`` in claim order (priority, then age), ``claimed`` and
        ``delivered`` oldest claim first, ``blocked`` newest change first, each at most
        ``open_limit``; ``done`` and ``failed`` the ``recent_limit`` most recently finished.
        """
        with self._read() as conn:
            now = self._clock(conn)
            pause = self._pause_state(conn)
            counts = dict.fromkeys(BOARD_LANES, 0)
            for status, total, waiting, delivered in conn.execute(self.sql.board_counts()):
                if status == READY:
                    counts["ready"], counts["waiting"] = total - waiting, waiting
                elif status == CLAIMED:
                    counts["claimed"], counts["delivered"] = total - delivered, delivered
                else:
                    counts[status] = total
            lanes = {
                lane: [card_from_row(row) for row in conn.execute(stmt).mappings()]
                for lane, stmt in self.sql.board_lanes(open_limit, recent_limit).items()
            }
        return BoardView(now=now, pause=pause, counts=counts, lanes=lanes)

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
        statuses = None
        if status is not None:
            wanted = [status] if isinstance(status, str | CardStatus) else list(status)
            statuses = [CardStatus(s).value for s in wanted]
        stmt = self.sql.card_list(
            statuses=statuses,
            ready_only=ready_only,
            phase=phase,
            target_agent=target_agent,
            target_class=target_class,
            limit=limit,
            offset=offset,
        )
        with self._read() as conn:
            return [card_from_row(row) for row in conn.execute(stmt).mappings()]
