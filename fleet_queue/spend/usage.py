"""The values of spend: tokens of one model turn, and a row of the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleet_queue.cards import EventKind


@dataclass(frozen=True)
class Tokens:
    """Tokens of one or more model requests. ``input`` excludes cached input: the four
    kinds are priced apart and never overlap."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    @property
    def total(self) -> int:
        return self.input + self.output + self.cache_read + self.cache_write

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cache_read_tokens": self.cache_read,
            "cache_write_tokens": self.cache_write,
        }


@dataclass(frozen=True)
class Turn:
    """One model request as a runtime recorded it: when, which model, for which card."""

    at: datetime
    model: str
    tokens: Tokens
    card: str | None = None


@dataclass(frozen=True)
class FileMark:
    """How far a record file was read, and what reading on from there needs."""

    offset: int = 0
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileAdvance:
    """A reader's move through one file: from ``before`` (what the store held) to ``after``."""

    path: str
    before: FileMark | None
    after: FileMark


@dataclass(frozen=True)
class SpendRow:
    """One row of the ledger: tokens and cost of an agent on a card, a model and a UTC day.
    ``cost`` None is unknown (no price for the model)."""

    agent: str
    day: str
    model: str
    tokens: Tokens
    cost: float | None
    card: str | None = None
    tenant_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "day": self.day,
            "agent": self.agent,
            "card": self.card,
            "model": self.model,
            **self.tokens.as_dict(),
            "cost": self.cost,
        }


@dataclass(frozen=True)
class LedgerEvent:
    """An event written with the ledger rows (an unpriced model, a budget crossed)."""

    kind: EventKind
    agent: str | None
    detail: str
