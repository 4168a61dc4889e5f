"""The board: the backlog by column, as plain data for ``fleet board`` and the web board.

Columns in the order a card travels: ``ready`` (claimable now), ``waiting`` (ready but
a dependency is not done), ``claimed`` (leased, not yet typed into the pane),
``delivered`` (typed, the agent works on it), ``blocked``, and the most recently
finished ``done`` and ``failed`` cards. Open columns list at most ``OPEN_LIMIT``
cards; every column's ``count`` is the number of cards in the store, listed or not.

Times are the store's clock (``now``), so ages agree from any machine. Titles are
complete here; renderers shorten them.

Given the roster, a ready card that no agent can take says why in ``waits_for`` (and its
``reason``, which both renderers show): ``untargetable`` when its target agent or class
is in no roster, else the state of the agent it is aimed at (``broken``, ``paused``,
``dead``...). ``counts["untargetable"]`` counts the listed ones. A waiting card whose
dependency failed names it in ``failed_deps``: that card will not finish without a person.

Spend (``fleet_queue.spend.report.cards_spend``): each card's tokens and cost where the
ledger has them (``spend``, None otherwise), and the tenant's spend today (UTC) in the
header (``spend_today``); a cost is ``cost_known: false`` when part of it has no price.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleet_queue.cards import AgentStatus, Card, CardStatus, PauseState, plain_fields
from fleet_queue.errors import FleetError, UsageError

if TYPE_CHECKING:
    from fleet_queue.roster import Roster
    from fleet_queue.settings import Settings
    from fleet_queue.spend.report import CardsSpend, SpendSum
    from fleet_queue.store import CardStore

DEFAULT_LIMIT = 20
"""Done and failed cards shown, most recent first."""

OPEN_LIMIT = 200
"""At most this many cards listed per open column (the count stays exact)."""

COLUMNS = ("ready", "waiting", "claimed", "delivered", "blocked", "done", "failed")


@dataclass(frozen=True)
class BoardCard:
    """One card as the board shows it; ``since`` is when it entered its column."""

    id: str
    title: str
    priority: int
    target_agent: str | None
    target_class: str | None
    lease_owner: str | None
    host: str | None
    token: int
    attempts: int
    max_attempts: int
    unmet_deps: int
    reason: str | None
    created_at: datetime
    since: datetime
    lease_expires_at: datetime | None
    age_seconds: float
    in_column_seconds: float
    lease_left_seconds: float | None
    waits_for: str | None = None
    """Why a ready card is not being taken (see the module's docstring)."""
    failed_deps: tuple[str, ...] = ()
    """Dependencies of a waiting card that failed: it waits for nothing that will come."""
    spend: dict[str, Any] | None = None
    """Its tokens and cost over every model and day (``SpendSum.as_dict``); None: none read."""
    spend_text: str = ""
    """``$0.0012`` (``+?`` part unpriced, ``unknown`` all unpriced); empty with no spend."""

    def to_dict(self) -> dict[str, Any]:
        return plain_fields(self)


@dataclass(frozen=True)
class BoardColumn:
    key: str
    count: int
    cards: tuple[BoardCard, ...]

    @property
    def hidden(self) -> int:
        """Cards of this column in the store but not listed."""
        return max(self.count - len(self.cards), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "count": self.count,
            "cards": [card.to_dict() for card in self.cards],
        }


@dataclass(frozen=True)
class Board:
    """The whole board: header (tenant, pause, counts) and the columns in order."""

    tenant: str
    now: datetime
    pause: PauseState
    counts: dict[str, int]
    """Cards per status, ``ready_to_claim`` and ``total``."""
    limit: int
    columns: tuple[BoardColumn, ...]
    spend_today: dict[str, Any] | None = None
    """The tenant's tokens and cost today (UTC), every card and none."""
    spend_today_text: str = ""

    def column(self, key: str) -> BoardColumn:
        return next(c for c in self.columns if c.key == key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "now": self.now.isoformat(),
            "pause": self.pause.to_dict(),
            "counts": dict(self.counts),
            "limit": self.limit,
            "columns": [column.to_dict() for column in self.columns],
            "spend_today": self.spend_today,
        }


def build_board(
    store: CardStore, limit: int = DEFAULT_LIMIT, roster: Roster | None = None
) -> Board:
    """The board of ``store``'s tenant, with the ``limit`` most recent done and failed cards;
    with ``roster``, why each ready card waits (``BoardCard.waits_for``)."""
    from fleet_queue.spend.report import cards_spend

    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise UsageError(f"board limit must be a whole number >= 0, not {limit!r}")
    view = store.board_view(open_limit=OPEN_LIMIT, recent_limit=limit)
    waits = Waits(roster, store.agent_statuses(), store.tenant) if roster else None
    deps = {dep for card in view.lanes["waiting"] for dep in card.depends_on}
    failed = {i for i, s in store.card_statuses(deps).items() if s == CardStatus.FAILED.value}
    spend = cards_spend(store, [card for key in COLUMNS for card in view.lanes[key]], view.now)
    columns = tuple(
        BoardColumn(
            key=key,
            count=view.counts[key],
            cards=tuple(
                _with_spend(_board_card(card, key, view.now, waits, failed), spend)
                for card in view.lanes[key]
            ),
        )
        for key in COLUMNS
    )
    n = view.counts
    counts = {
        CardStatus.READY.value: n["ready"] + n["waiting"],
        CardStatus.CLAIMED.value: n["claimed"] + n["delivered"],
        CardStatus.BLOCKED.value: n["blocked"],
        CardStatus.DONE.value: n["done"],
        CardStatus.FAILED.value: n["failed"],
        "ready_to_claim": n["ready"],
        "total": sum(n.values()),
        "untargetable": sum(
            1
            for column in columns[:2]
            for card in column.cards
            if (card.waits_for or "").startswith(UNTARGETABLE)
        ),
    }
    return Board(
        tenant=store.tenant,
        now=view.now,
        pause=view.pause,
        counts=counts,
        limit=limit,
        columns=columns,
        spend_today=_spend_dict(spend.today),
        spend_today_text=spend.today.cost_words() if spend.today.tokens.total else "",
    )


def _spend_dict(spent: SpendSum) -> dict[str, Any]:
    fields = {key: value for key, value in spent.as_dict("-").items() if key != "-"}
    return {**fields, "tokens": spent.tokens.total}


def _with_spend(card: BoardCard, spend: CardsSpend) -> BoardCard:
    spent = spend.of(card.id)
    if spent is None:
        return card
    return replace(card, spend=_spend_dict(spent), spend_text=spent.cost_words())


UNTARGETABLE = "untargetable"


class Waits:
    """Why a ready card is not taken, from the roster and the agents' status rows."""

    def __init__(self, roster: Roster, statuses: list[AgentStatus], tenant: str) -> None:
        from fleet_queue.targets import Targets

        self.targets = Targets.of(roster, tenant)
        self.readiness = {s.agent: str(s.readiness) for s in statuses}

    def why(self, card: Card) -> str | None:
        stranger = self.targets.stranger(card.target_agent, card.target_class)
        if stranger is not None:
            return f"{UNTARGETABLE}: no {stranger} in the roster"
        if card.target_agent is not None:
            state = self.readiness.get(card.target_agent, "unreported")
            if state in ("broken", "paused", "dead", "briefing", "unreported", "stale"):
                return f"agent {card.target_agent} is {state}"
        return None


def board_roster(settings: Settings) -> Roster | None:
    """The roster for the board's wait reasons; None (no reasons) when it cannot be read."""
    from fleet_queue.roster import load_roster

    try:
        return load_roster(settings.effective_roster_path)
    except FleetError:
        return None


def _board_card(
    card: Card,
    column: str,
    now: datetime,
    waits: Waits | None = None,
    failed: set[str] | frozenset[str] = frozenset(),
) -> BoardCard:
    since = _entered(card, column)
    left = None
    if card.status is CardStatus.CLAIMED and card.lease_expires_at is not None:
        left = round((card.lease_expires_at - now).total_seconds(), 1)
    waits_for = waits.why(card) if waits and column in ("ready", "waiting") else None
    return BoardCard(
        id=card.id,
        title=card.title,
        priority=card.priority,
        target_agent=card.target_agent,
        target_class=card.target_class,
        lease_owner=card.lease_owner,
        host=card.host,
        token=card.token,
        attempts=card.attempts,
        max_attempts=card.max_attempts,
        unmet_deps=card.unmet_deps,
        reason=card.reason if column in ("blocked", "failed") else waits_for,
        created_at=card.created_at,
        since=since,
        lease_expires_at=card.lease_expires_at if left is not None else None,
        age_seconds=_seconds(now, card.created_at),
        in_column_seconds=_seconds(now, since),
        lease_left_seconds=left,
        waits_for=waits_for,
        failed_deps=tuple(d for d in card.depends_on if d in failed) if column == "waiting" else (),
    )


def _entered(card: Card, column: str) -> datetime:
    """When the card came into ``column``: its claim, delivery or finish; else its last change."""
    if column == "claimed" and card.claimed_at is not None:
        return card.claimed_at
    if column == "delivered" and card.delivered_at is not None:
        return card.delivered_at
    if column in ("done", "failed") and card.completed_at is not None:
        return card.completed_at
    return card.updated_at


def _seconds(now: datetime, then: datetime) -> float:
    return round(max((now - then).total_seconds(), 0.0), 1)


def short_duration(seconds: float | None) -> str:
    """``42s``, ``7m``, ``3h``, ``2d``: how long, for a narrow column."""
    if seconds is None:
        return ""
    value = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if value >= size:
            return f"{int(value // size)}{unit}"
    return f"{int(value)}s"


def target_of(card: BoardCard) -> str:
    """``@agent`` for a card pinned to one agent, the class name for a role, else ``any``."""
    if card.target_agent:
        return f"@{card.target_agent}"
    return card.target_class or "any"


def lease_left(card: BoardCard) -> str:
    if card.lease_left_seconds is None:
        return ""
    if card.lease_left_seconds <= 0:
        return "expired"
    return short_duration(card.lease_left_seconds)
