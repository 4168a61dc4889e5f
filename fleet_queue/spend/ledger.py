"""Turns read from a runtime's records become ledger rows: priced, summed per UTC day,
card and model. Pure: the reader in ``workers`` reads, the store writes."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from fleet_queue.cards import EventKind
from fleet_queue.spend.prices import PriceTable
from fleet_queue.spend.usage import LedgerEvent, SpendRow, Tokens, Turn

log = logging.getLogger(__name__)


def day_of(when: datetime) -> str:
    """The ledger's day: the UTC date, so every host and the tick agree on it."""
    return when.astimezone(UTC).strftime("%Y-%m-%d")


def month_start(day: str) -> str:
    return day[:8] + "01"


def rows_of(agent: str, turns: Iterable[Turn], prices: PriceTable) -> list[SpendRow]:
    """One row per (day, card, model); a cost is None when the model has no price."""
    sums: dict[tuple[str, str | None, str], tuple[Tokens, float | None]] = {}
    for turn in turns:
        key = (day_of(turn.at), turn.card, turn.model)
        tokens, cost = sums.get(key, (Tokens(), 0.0))
        turn_cost = prices.cost(turn.model, turn.tokens)
        total = None if cost is None or turn_cost is None else cost + turn_cost
        sums[key] = (tokens + turn.tokens, total)
    return [
        SpendRow(agent=agent, day=day, model=model, tokens=tokens, cost=cost, card=card)
        for (day, card, model), (tokens, cost) in sums.items()
        if tokens.total
    ]


def unpriced_events(
    agent: str, rows: Iterable[SpendRow], already: Collection[str]
) -> list[LedgerEvent]:
    """An ``unpriced_model`` event for each model with no price not ``already`` announced."""
    models = dict.fromkeys(row.model for row in rows if row.cost is None)
    events = []
    for model in models:
        if model in already:
            continue
        log.warning("no price for model %r: its tokens are counted, its cost is unknown", model)
        events.append(LedgerEvent(EventKind.UNPRICED, agent, f"{model}: {UNPRICED_DETAIL}"))
    return events


UNPRICED_DETAIL = "no price (add it to the price file); tokens counted, cost unknown"


def unpriced_model(detail: str | None) -> str:
    """The model an ``unpriced_model`` event names."""
    return (detail or "").split(":", 1)[0]
