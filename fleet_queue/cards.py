"""The card and what the store says about it: plain frozen values, no SQL.

A card, a new card, a claim and its request, a reclaimed lease, an event and its kind, a
bulk create's result. What the store holds of the fleet itself (agents' status rows, the
pause flag) is in :mod:`fleet_queue.fleet_status`.

Every type here is what the store hands out or takes in; they never change
after creation (use ``dataclasses.replace`` for a changed copy). Times are
timezone-aware UTC ``datetime`` values taken from the *database* clock, so that
leases expire by one clock however many hosts look at them.

Validation of new cards happens here, before anything touches the store, so a
bad card is refused with one clear line and nothing written:

- ``id`` must be 1-200 characters with no whitespace or control characters
  (it is typed into panes and used in shell commands: ``fleet card done <id>``);
- ``title`` must be non-empty after cleaning;
- ``title`` and ``body`` are passed through
  :func:`fleet_queue.sanitize.sanitize_text`: control characters (ESC, BEL, the
  C1 range, DEL...) are **stripped**, CRLF becomes newline. They are stored
  cleaned, so the text typed into a pane later is exactly what the store holds.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleet_queue.card_checks import check_new_card, check_raw_card
from fleet_queue.errors import UsageError
from fleet_queue.fleet_status import AgentStatus, PauseState, Readiness
from fleet_queue.plain_data import plain_fields
from fleet_queue.sanitize import sanitize_text

__all__ = [  # the fleet's other values, still importable from here
    "AgentStatus",
    "PauseState",
    "Readiness",
    "plain_fields",
]

MAX_ID_LENGTH = 200
_BAD_ID = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")

DELIVERY_FAILED = "delivery failed"
"""How the reason of a delivery-failure release reads (``CardStore.release_undelivered``) for
people; the store counts these releases in a column, never by this text."""


class CardStatus(enum.StrEnum):
    """Where a card is in its life: ready → claimed → done | failed; blocked is parked."""

    READY = "ready"
    CLAIMED = "claimed"
    BLOCKED = "blocked"
    DONE = "done"
    FAILED = "failed"


class EventKind(enum.StrEnum):
    """What an event of the audit trail records; also the kind a change hook is told."""

    CREATED = "created"
    LINKED = "linked"
    CLAIMED = "claimed"
    DELIVERED = "delivered"
    RENEWED = "renewed"
    DONE = "done"
    FAILED = "failed"
    RELEASED = "released"
    RECLAIMED = "reclaimed"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    PAUSED = "paused"
    RESUMED = "resumed"
    BUDGET_WARNING = "budget_warning"
    """A budget reached its warning share (``detail``: ``<scope> <period>: spent of limit``)."""
    OVER_BUDGET = "over_budget"
    """A budget is spent: the tick gives its agents no new card until the period turns."""
    UNPRICED = "unpriced_model"
    """Spend of a model with no price: its tokens are counted, its cost is unknown."""
    DROPPED = "dropped"
    """A host worker dropped a delivery message that the fence refused."""
    UNDELIVERED = "undelivered"
    """A host worker left a card it could not type to its lease's expiry."""
    OPERATOR = "operator"
    """An operator's action from the console (``detail``: ``by <user>: <what>``)."""
    RESTARTED = "restarted"
    """A host worker restarted an agent whose pane had died (no card; ``agent`` names it)."""
    BROKEN = "broken"
    """An agent crashed too often (``FLEET_RESTART_MAX`` in ``FLEET_RESTART_WINDOW``): no more
    restarts and no cards until ``fleet start NAME``."""
    BRIEFED = "briefed"
    """A host worker typed an agent's brief into its new pane (or gave up, said in detail)."""
    AGENT_PAUSED = "agent_paused"
    """``fleet agent pause NAME``: no card for that agent until it is resumed."""
    AGENT_RESUMED = "agent_resumed"

    @classmethod
    def parse(cls, kind: str) -> EventKind:
        """The kind named ``kind``; a name that is no kind is refused with one line."""
        try:
            return cls(kind)
        except ValueError:
            known = ", ".join(k.value for k in cls)
            raise UsageError(f"no event kind {kind!r} (one of: {known})") from None


def epoch_to_datetime(value: float | None) -> datetime | None:
    """The store keeps times as epoch seconds (portable, indexable); callers get datetimes."""
    if value is None:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def validate_card_id(card_id: str) -> str:
    """Refuse an id that cannot be typed safely into a pane or a shell command."""
    if not isinstance(card_id, str) or not card_id:
        raise UsageError("card id must be a non-empty string")
    if len(card_id) > MAX_ID_LENGTH:
        raise UsageError(f"card id {card_id[:40]!r}... is longer than {MAX_ID_LENGTH} characters")
    if _BAD_ID.search(card_id):
        raise UsageError(f"card id {card_id!r} contains whitespace or control characters")
    return card_id


@dataclass(frozen=True)
class NewCard:
    """What a caller asks the store to create; validated and cleaned on construction."""

    id: str
    title: str
    body: str = ""
    phase: str | None = None
    priority: int = 0
    depends_on: tuple[str, ...] = ()
    target_agent: str | None = None
    target_class: str | None = None
    acceptance: Any = None
    idempotency_key: str | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        validate_card_id(self.id)
        check_new_card(self)  # shell-safe ids, a string title, integers in range
        title = sanitize_text(str(self.title)).strip()
        if not title:
            raise UsageError(f"card {self.id}: title must not be empty")
        object.__setattr__(self, "title", title)
        object.__setattr__(self, "body", sanitize_text(str(self.body or "")))
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise UsageError(f"card {self.id}: priority must be an integer, not {self.priority!r}")
        deps = tuple(dict.fromkeys(self.depends_on))
        for dep in deps:
            validate_card_id(dep)
        if self.id in deps:
            raise UsageError(f"card {self.id} cannot depend on itself ({self.id} -> {self.id})")
        object.__setattr__(self, "depends_on", deps)
        for name in ("target_agent", "target_class"):
            value = getattr(self, name)
            if value is not None and (not str(value) or _BAD_ID.search(str(value))):
                raise UsageError(f"card {self.id}: {name} {value!r} must be a non-empty word")
        if self.phase is not None:
            object.__setattr__(self, "phase", sanitize_text(str(self.phase)).strip() or None)
        if self.idempotency_key is not None and not str(self.idempotency_key):
            raise UsageError(f"card {self.id}: idempotency_key must not be empty")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise UsageError(f"card {self.id}: max_attempts must be at least 1")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> NewCard:
        """Build from loose data (YAML, JSON, CLI) with one clear error for a wrong shape."""
        known = {
            "id",
            "title",
            "body",
            "phase",
            "priority",
            "depends_on",
            "target_agent",
            "target_class",
            "acceptance",
            "idempotency_key",
            "max_attempts",
        }
        check_raw_card(data)  # a float priority refused here, not truncated by _as_int
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"card {data.get('id')!r}: unknown field(s) {', '.join(unknown)}")
        if "id" not in data or "title" not in data:
            raise UsageError(f"card {data.get('id')!r}: needs both id and title")
        deps = data.get("depends_on") or ()
        if isinstance(deps, str):
            deps = [d for d in re.split(r"[,\s]+", deps) if d]
        if not isinstance(deps, Iterable):
            raise UsageError(f"card {data['id']!r}: depends_on must be a list of ids")
        phase = data.get("phase")
        return cls(
            id=str(data["id"]),
            title=str(data["title"]),
            body=str(data.get("body") or ""),
            phase=None if phase is None else str(phase),
            priority=_as_int(data.get("priority", 0), data["id"], "priority"),
            depends_on=tuple(str(d) for d in deps),
            target_agent=data.get("target_agent"),
            target_class=data.get("target_class"),
            acceptance=data.get("acceptance"),
            idempotency_key=data.get("idempotency_key"),
            max_attempts=data.get("max_attempts"),
        )


def _as_int(value: Any, card_id: Any, name: str) -> int:
    if isinstance(value, bool):
        raise UsageError(f"card {card_id!r}: {name} must be an integer, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"card {card_id!r}: {name} must be an integer, not {value!r}") from None


@dataclass(frozen=True)
class Card:
    """One card as the store holds it. ``token`` is the fencing token of the latest claim."""

    id: str
    tenant_id: str
    title: str
    body: str
    phase: str | None
    priority: int
    status: CardStatus
    depends_on: tuple[str, ...]
    unmet_deps: int
    target_agent: str | None
    target_class: str | None
    created_host: str
    host: str | None
    lease_owner: str | None
    token: int
    lease_expires_at: datetime | None
    attempts: int
    max_attempts: int
    idempotency_key: str | None
    acceptance: Any
    result: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None
    delivered_at: datetime | None
    completed_at: datetime | None

    @property
    def ready_to_claim(self) -> bool:
        """Ready and every dependency done."""
        return self.status is CardStatus.READY and self.unmet_deps == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for ``--json`` and the web board)."""
        return plain_fields(self)


@dataclass(frozen=True)
class ClaimRequest:
    """One available agent asking for its best card in a supervisor tick."""

    agent: str
    agent_class: str | None
    host: str
    lease_ttl: float
    take_untargeted: bool = True
    """Whether the agent may take a card aimed at nobody (the common lane). The tick says
    no for an orchestrator or enhancer unless its roster entry says ``takes_untargeted``."""


@dataclass(frozen=True)
class Claim:
    """A lease: ``card`` is held by ``agent`` on ``host`` under ``token`` until ``expires_at``."""

    card: Card
    token: int
    agent: str
    host: str
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "card": self.card.to_dict(),
            "token": self.token,
            "agent": self.agent,
            "host": self.host,
            "expires_at": self.expires_at.isoformat(),
        }


@dataclass(frozen=True)
class ReclaimedCard:
    """A lease the reclaim took back: the card went to ``outcome`` (ready, or failed)."""

    card_id: str
    token: int
    agent: str | None
    host: str | None
    attempts: int
    outcome: CardStatus
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "card_id": self.card_id,
            "token": self.token,
            "agent": self.agent,
            "host": self.host,
            "attempts": self.attempts,
            "outcome": self.outcome.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Event:
    """One row of the append-only audit trail."""

    id: int
    tenant_id: str
    host: str
    card_id: str | None
    kind: EventKind
    agent: str | None
    token: int | None
    detail: str | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "host": self.host,
            "card_id": self.card_id,
            "kind": self.kind.value,
            "agent": self.agent,
            "token": self.token,
            "detail": self.detail,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class BulkResult:
    """What a bulk create did: how many new cards, and which ids already existed by key."""

    created: int
    existing: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"created": self.created, "existing": list(self.existing)}
