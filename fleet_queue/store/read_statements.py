"""The card store's statements that only read: card lists, events, stats, the board, agents.

The base of :class:`~fleet_queue.store.statements.Statements` (which adds the claim,
lease, link and write statements and the backend differences), apart so each file
reads as one part of the data contract. The card status values and the card columns
every statement selects live here, the lowest module that needs them.

Every statement is scoped to one tenant; every time comes from the database clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from fleet_queue.cards import CardStatus, EventKind
from fleet_queue.store.tables import agents, card_deps, cards, events, fleet_state

READY = CardStatus.READY.value
CLAIMED = CardStatus.CLAIMED.value
BLOCKED = CardStatus.BLOCKED.value
DONE = CardStatus.DONE.value
FAILED = CardStatus.FAILED.value

CARD_COLUMNS = [c for c in cards.c if c.name not in {"seq", "route"}]
CARD_SELECT = sa.select(cards.c.seq, *CARD_COLUMNS)
EVENT_COLUMNS = list(events.c)
# Per status: cards, of them with no unmet dependency, and the first created; every column
# read is in ix_cards_claim, so it is one pass over the index and never reads a table row.
STATS_BY_STATUS = (
    sa.select(
        cards.c.status,
        sa.func.count(),
        sa.func.count().filter(cards.c.unmet_deps == 0),
        sa.func.min(cards.c.seq),
    )
    .where(cards.c.tenant_id == sa.bindparam("t"))
    .group_by(cards.c.status)
)

# The claim lanes that hold a claimable card: a skip scan of ix_cards_claim (one index probe
# per lane, whatever the number of ready cards), the same text on both backends.
_CLAIMABLE = "tenant_id = :tenant AND status = 'ready' AND unmet_deps = 0"
LANES_WITH_CARDS = sa.text(
    "WITH RECURSIVE lanes(route) AS ("
    f" SELECT (SELECT route FROM cards WHERE {_CLAIMABLE} ORDER BY route LIMIT 1)"
    " UNION ALL"
    f" SELECT (SELECT route FROM cards WHERE {_CLAIMABLE} AND route > lanes.route"
    " ORDER BY route LIMIT 1) FROM lanes WHERE lanes.route IS NOT NULL"
    ") SELECT route FROM lanes WHERE route IS NOT NULL"
)
# How many claimable cards one lane holds, counted no further than ``cap``.
LANE_DEPTH = sa.text(
    f"SELECT count(*) FROM (SELECT 1 FROM cards WHERE {_CLAIMABLE} AND route = :route"
    " LIMIT :cap) AS lane"
)

BOARD_LANES = ("ready", "waiting", "claimed", "delivered", "blocked", "done", "failed")
"""The board's columns: ``ready`` is claimable now, ``waiting`` has unfinished dependencies;
``claimed`` is leased but not yet typed into the pane, ``delivered`` is typed."""


class ReadStatements:
    """One tenant's reads on one backend."""

    def __init__(self, tenant: str, dialect: str) -> None:
        self.tenant = tenant
        self.sqlite = dialect == "sqlite"

    @property
    def _mine(self) -> sa.ColumnElement[bool]:
        return cards.c.tenant_id == self.tenant

    def dependents(self, card_id: str) -> sa.Select[Any]:
        return sa.select(card_deps.c.card_id).where(
            card_deps.c.tenant_id == self.tenant, card_deps.c.dep_id == card_id
        )

    def lease_owners(self) -> sa.Select[Any]:
        return sa.select(cards.c.lease_owner).where(self._mine, cards.c.status == CLAIMED)

    def card_list(
        self,
        *,
        statuses: list[str] | None,
        ready_only: bool,
        phase: str | None,
        target_agent: str | None,
        target_class: str | None,
        limit: int | None,
        offset: int,
    ) -> sa.Select[Any]:
        stmt = CARD_SELECT.where(self._mine)
        if statuses is not None:
            stmt = stmt.where(cards.c.status.in_(statuses))
        if ready_only:
            stmt = stmt.where(cards.c.status == READY, cards.c.unmet_deps == 0)
        if phase is not None:
            stmt = stmt.where(cards.c.phase == phase)
        if target_agent is not None:
            stmt = stmt.where(cards.c.target_agent == target_agent)
        if target_class is not None:
            stmt = stmt.where(cards.c.target_class == target_class)
        stmt = stmt.order_by(cards.c.priority.desc(), cards.c.seq).offset(offset)
        return stmt if limit is None else stmt.limit(limit)

    # --- events ---------------------------------------------------------------------------

    def event_list(
        self,
        *,
        card_id: str | None,
        kind: EventKind | None,
        since: float | None,
        until: float | None,
        after_id: int | None,
        limit: int | None,
    ) -> sa.Select[Any]:
        stmt = sa.select(*EVENT_COLUMNS).where(events.c.tenant_id == self.tenant)
        if card_id is not None:
            stmt = stmt.where(events.c.card_id == card_id)
        if kind is not None:
            stmt = stmt.where(events.c.kind == kind.value)
        if since is not None:
            stmt = stmt.where(events.c.at >= since)
        if until is not None:
            stmt = stmt.where(events.c.at <= until)
        if after_id is not None:
            stmt = stmt.where(events.c.id > after_id)
        stmt = stmt.order_by(events.c.id)
        if limit is None:
            return stmt
        # the newest ``limit`` events, still oldest first
        newest = stmt.order_by(None).order_by(events.c.id.desc()).limit(limit).subquery()
        return sa.select(newest).order_by(sa.column("id"))

    def events_after(self, after_id: int, kinds: Sequence[EventKind], limit: int) -> sa.Select[Any]:
        """The oldest ``limit`` events of ``kinds`` after ``after_id``: a reader's cursor moves
        forward through them (``event_list``'s limit keeps the newest instead)."""
        return (
            sa.select(*EVENT_COLUMNS)
            .where(
                events.c.tenant_id == self.tenant,
                events.c.id > after_id,
                events.c.kind.in_([k.value for k in kinds]),
            )
            .order_by(events.c.id)
            .limit(limit)
        )

    def last_event_id(self) -> sa.Select[Any]:
        return sa.select(sa.func.max(events.c.id)).where(events.c.tenant_id == self.tenant)

    def recent_kinds(self, since: float, kinds: Sequence[EventKind]) -> sa.Select[Any]:
        return (
            sa.select(events.c.kind, sa.func.count())
            .where(
                events.c.tenant_id == self.tenant,
                events.c.kind.in_([k.value for k in kinds]),
                events.c.at >= since,
            )
            .group_by(events.c.kind)
        )

    def agent_holds(self) -> sa.Select[Any]:
        """Each agent's latest pause or resume event (``fleet agent pause|resume``)."""
        kinds = [EventKind.AGENT_PAUSED.value, EventKind.AGENT_RESUMED.value]
        mine = sa.and_(events.c.tenant_id == self.tenant, events.c.kind.in_(kinds))
        latest = sa.select(sa.func.max(events.c.id)).where(mine).group_by(events.c.agent)
        return sa.select(events.c.agent, events.c.kind, events.c.detail).where(
            mine, events.c.id.in_(latest.scalar_subquery())
        )

    # --- stats and the board ---------------------------------------------------------------

    def created_at_of(self, seq: int) -> sa.Select[Any]:
        return sa.select(cards.c.created_at).where(cards.c.seq == seq)

    def expired_count(self, now: float) -> sa.Select[Any]:
        return sa.select(sa.func.count()).where(
            cards.c.status == CLAIMED, cards.c.lease_expires_at <= now, self._mine
        )

    def board_counts(self) -> sa.Select[Any]:
        """Per status: cards, of them waiting for dependencies, of them delivered."""
        c = cards.c
        return (
            sa.select(
                c.status,
                sa.func.count(),
                sa.func.sum(sa.case((c.unmet_deps > 0, 1), else_=0)),
                sa.func.sum(sa.case((c.delivered_at.is_not(None), 1), else_=0)),
            )
            .where(self._mine)
            .group_by(c.status)
        )

    def board_lanes(self, open_limit: int, recent_limit: int) -> dict[str, sa.Select[Any]]:
        """The cards of each board lane (see ``ReadModels.board_view`` for the order)."""
        c = cards.c
        claim_order = (c.priority.desc(), c.seq)
        lanes = {
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
        return {
            lane: CARD_SELECT.where(self._mine, where).order_by(*order).limit(max(limit, 0))
            for lane, (where, order, limit) in lanes.items()
        }

    # --- pause and agents ------------------------------------------------------------------

    def pause_state(self) -> sa.Select[Any]:
        return sa.select(fleet_state).where(fleet_state.c.tenant_id == self.tenant)

    def agent_rows(self, host: str | None) -> sa.Select[Any]:
        stmt = sa.select(agents).where(agents.c.tenant_id == self.tenant)
        if host is not None:
            stmt = stmt.where(agents.c.host == host)
        return stmt.order_by(agents.c.host, agents.c.agent)
