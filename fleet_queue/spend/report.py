"""``fleet spend``: the ledger summed by agent, card, model or day."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fleet_queue.spend.usage import SpendRow, Tokens

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
