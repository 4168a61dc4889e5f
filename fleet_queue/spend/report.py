"""``fleet spend``: the ledger summed by agent, card, model or day; and ``cards_spend``,
what the board and a card's page show of it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fleet_queue.spend.ledger import day_of
from fleet_queue.spend.usage import SpendRow, Tokens

if TYPE_CHECKING:
    from fleet_queue.cards import Card
    from fleet_queue.store import CardStore

By = Literal["agent", "card", "model", "day"]
BY_CHOICES: tuple[By, ...] = ("agent", "card", "model", "day")


@dataclass(frozen=True)
class SpendSum:
    """Spend of one group: ``cost`` sums the priced rows; ``unpriced_tokens`` the rest."""

    key: str
    tokens: Tokens
    cost: float
    unpriced_tokens: int

    def as_dict(self, by: str) -> dict[str, Any]:
        return {
            by: self.key,
            **self.tokens.as_dict(),
            "cost": round(self.cost, 6),
            "cost_known": self.unpriced_tokens == 0,
            "unpriced_tokens": self.unpriced_tokens,
        }

    def cost_text(self) -> str:
        """``$1.2345``; ``+?`` when some of it is of a model with no price."""
        return f"${self.cost:.4f}" + ("+?" if self.unpriced_tokens else "")

    def cost_words(self) -> str:
        """As ``cost_text``, but ``unknown`` when none of it has a price."""
        if self.unpriced_tokens and self.unpriced_tokens == self.tokens.total:
            return "unknown"
        return self.cost_text()


def key_of(row: SpendRow, by: By) -> str:
    value = {"agent": row.agent, "card": row.card, "model": row.model, "day": row.day}[by]
    return value or "-"


def summed(rows: Iterable[SpendRow], by: By) -> list[SpendSum]:
    """Groups in key order, each with its tokens, known cost and unpriced tokens."""
    groups: dict[str, tuple[Tokens, float, int]] = {}
    for row in rows:
        key = key_of(row, by)
        tokens, cost, unpriced = groups.get(key, (Tokens(), 0.0, 0))
        if row.cost is None:
            unpriced += row.tokens.total
        groups[key] = (tokens + row.tokens, cost + (row.cost or 0.0), unpriced)
    return [SpendSum(key, *groups[key]) for key in sorted(groups)]


def total(rows: Iterable[SpendRow]) -> SpendSum:
    sums = summed([SpendRow(r.agent, r.day, "", r.tokens, r.cost) for r in rows], "model")
    return sums[0] if sums else SpendSum("-", Tokens(), 0.0, 0)


@dataclass(frozen=True)
class CardsSpend:
    """What the board and a card's page show: each card's spend by model (every day it
    ran), and the tenant's spend today (UTC)."""

    today: SpendSum
    by_card: dict[str, tuple[SpendSum, ...]] = field(default_factory=dict)

    def of(self, card_id: str) -> SpendSum | None:
        """The card's spend over every model; None when the ledger has none of it."""
        models = self.by_card.get(card_id)
        if not models:
            return None
        return SpendSum(
            card_id,
            sum((m.tokens for m in models), Tokens()),
            sum(m.cost for m in models),
            sum(m.unpriced_tokens for m in models),
        )


def cards_spend(store: CardStore, cards: Sequence[Card], now: datetime) -> CardsSpend:
    """The one read of the ledger behind the board and the card page: today's rows, and
    the rows of ``cards`` since the first of them was made (a card spends nothing before it
    exists, so the read stays within the days the ledger is indexed by)."""
    today = day_of(now)
    rows = store.spend_rows(today, today)
    by_card: dict[str, tuple[SpendSum, ...]] = {}
    if cards:
        first = min(day_of(card.created_at) for card in cards)
        found: dict[str, list[SpendRow]] = {}
        for row in store.spend_rows(first, today, cards={c.id for c in cards}):
            found.setdefault(row.card or "", []).append(row)
        by_card = {card: tuple(summed(rows_, "model")) for card, rows_ in found.items()}
    return CardsSpend(total(rows), by_card)
