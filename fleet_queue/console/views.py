"""What the console's pages show, as plain data built from the store and the roster.

The store's clock gives every age, so the console agrees with ``fleet board`` and
``fleet ps`` from any machine. Words are plain: "lease ends in 4m", not "#3".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet_queue.board import UNTARGETABLE, Board, BoardCard, build_board, lease_left
from fleet_queue.board import short_duration as duration
from fleet_queue.cards import Card, CardStatus, Event
from fleet_queue.fleet_view import FleetRow, fleet_rows
from fleet_queue.spend.report import SpendSum, cards_spend

if TYPE_CHECKING:
    from fleet_queue.roster import Roster
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore

STUCK_UNTYPED = 60.0
"""A card claimed this many seconds ago and still not typed into its pane is marked stuck
(a delivery normally follows its claim within a tick or two)."""

COLUMN_TITLES = {
    "ready": "Ready",
    "waiting": "Waiting for other cards",
    "claimed": "Claimed, not yet typed",
    "delivered": "Being worked on",
    "blocked": "Blocked",
    "done": "Done",
    "failed": "Failed",
}


@dataclass(frozen=True)
class AgentView:
    """One row of the agents panel."""

    row: FleetRow
    card_seconds: float | None
    """How long the agent has held its current card (since its claim or delivery)."""
    local: bool
    """Its pane is on this host: the terminal view and the agent actions work."""
    paused: bool = False
    """Paused by name (``fleet agent pause``): the panel offers Resume instead of Pause."""

    @property
    def state(self) -> str:
        return self.row.readiness

    @property
    def heartbeat(self) -> str:
        age = self.row.heartbeat_age
        return "never" if age is None else f"{duration(age)} ago"

    @property
    def on_card(self) -> str:
        return duration(self.card_seconds) if self.card_seconds is not None else ""

    @property
    def spend(self) -> str:
        return self.row.spend_text


@dataclass(frozen=True)
class Mark:
    """A flag on a card of the board: ``kind`` is the CSS class, ``text`` what it says."""

    kind: str
    text: str


def card_marks(card: BoardCard, column: str) -> list[Mark]:
    """Stuck, untargetable or held cards stand out from the rest."""
    marks = []
    left = card.lease_left_seconds
    if column in ("claimed", "delivered") and left is not None and left <= 0:
        marks.append(Mark("stuck", "stuck: its lease has run out"))
    if column == "claimed" and card.in_column_seconds > STUCK_UNTYPED:
        marks.append(Mark("stuck", f"stuck: claimed {duration(card.in_column_seconds)} ago"))
    marks.extend(Mark("stuck", f"stuck: waits on {dep}, which failed") for dep in card.failed_deps)
    if card.waits_for:
        kind = "untargetable" if card.waits_for.startswith(UNTARGETABLE) else "held"
        marks.append(Mark(kind, card.waits_for))
    return marks


def card_facts(card: BoardCard, column: str) -> list[str]:
    """The short facts under a card's title, in plain words."""
    facts = [_target(card)]
    if card.lease_owner and column in ("claimed", "delivered", "done", "failed"):
        facts.append(f"by {card.lease_owner}")
    if column == "waiting":
        facts.append(f"{card.unmet_deps} unfinished dependencies")
    facts.append(f"in this column {duration(card.in_column_seconds)}")
    if column in ("claimed", "delivered") and card.lease_left_seconds is not None:
        left = lease_left(card)
        facts.append("lease ran out" if left == "expired" else f"lease ends in {left}")
    if card.attempts > 1:
        facts.append(f"attempt {card.attempts} of {card.max_attempts}")
    if card.spend_text:
        facts.append(f"spent {card.spend_text}")
    return facts


def _target(card: BoardCard) -> str:
    if card.target_agent:
        return f"for agent {card.target_agent}"
    if card.target_class:
        return f"for any {card.target_class}"
    return "for any agent"


def agent_views(
    store: CardStore, roster: Roster | None, settings: Settings, board: Board, local: set[str]
) -> list[AgentView]:
    """Every agent of the tenant on every host, with how long it has held its card."""
    if roster is None:
        return []
    held = {
        card.lease_owner: card.in_column_seconds
        for key in ("claimed", "delivered")
        for card in board.column(key).cards
        if card.lease_owner
    }
    paused = store.paused_agents()
    return [
        AgentView(
            row,
            held.get(row.agent) if row.current_card else None,
            row.agent in local,
            row.agent in paused,
        )
        for row in fleet_rows(store, roster, settings)
    ]


@dataclass(frozen=True)
class CardDetail:
    card: Card
    depends_on: list[Card]
    dependents: list[Card]
    events: list[Event]
    marks: list[Mark]
    spend: tuple[SpendSum, ...] = ()
    """Its tokens and cost by model, every day it ran (``cost_words``: ``unknown`` unpriced)."""
    spend_total: SpendSum | None = None


def card_detail(store: CardStore, card_id: str, roster: Roster | None) -> CardDetail:
    """One card with both directions of its dependencies and its whole event trail."""
    card = store.get(card_id)
    depends_on = [store.get(dep) for dep in card.depends_on]
    dependents = [store.get(dep) for dep in store.dependents(card_id)]
    marks = []
    if card.status in (CardStatus.READY, CardStatus.CLAIMED):
        board = build_board(store, 0, roster)
        for column in board.columns:
            for shown in column.cards:
                if shown.id == card_id:
                    marks.extend(card_marks(shown, column.key))
    spent = cards_spend(store, [card], store.now())
    return CardDetail(
        card,
        depends_on,
        dependents,
        store.events(card_id=card_id, limit=None),
        marks,
        spent.by_card.get(card_id, ()),
        spent.of(card_id),
    )
