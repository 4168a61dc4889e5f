"""A card aimed at an agent or class no roster has would wait ``ready`` forever: refuse it.

``fleet backlog create|import`` and the Python API (``Backlog``, ``enqueue``) check every
new card's ``target_agent`` and ``target_class`` against the roster of the card's tenant
before anything is written; the first stranger is one line and nothing is created. The
operator who means it (an agent to be added later) passes ``--allow-unknown-target`` /
``allow_unknown_target=True``; the card is then listed as ``untargetable`` by the board,
``fleet backlog stats`` and ``fleet doctor`` until the roster has its target.

With no roster file yet (a backlog filled before ``fleet init``) nothing is checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet_queue.cards import NewCard
from fleet_queue.errors import UsageError
from fleet_queue.roster import Roster, load_roster
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.store import CardStore

ALLOW_FLAG = "--allow-unknown-target"
UNTARGETABLE_HINT = (
    "add the missing agent or class to the roster (fleet agent add), or block those cards"
    " (fleet backlog block ID); fleet board names each card"
)


@dataclass(frozen=True)
class Targets:
    """The agent names and classes a card of one tenant may aim at."""

    agents: frozenset[str]
    classes: frozenset[str]

    @classmethod
    def of(cls, roster: Roster, tenant: str) -> Targets:
        team = [a for a in roster.agents if a.tenant_or(tenant) == tenant]
        return cls(frozenset(a.name for a in team), frozenset(a.agent_class for a in team))

    def stranger_lane(self, lane: str) -> str | None:
        """``agent 'x'`` / ``class 'y'`` for a claim lane (``a:x``, ``c:y``) nobody here has."""
        kind, _, name = lane.partition(":")
        if kind == "a":
            return None if name in self.agents else f"agent {name!r}"
        if kind == "c":
            return None if name in self.classes else f"class {name!r}"
        return None

    def stranger(self, target_agent: str | None, target_class: str | None) -> str | None:
        """What of a card's target no roster agent has (``agent 'x'`` / ``class 'y'``)."""
        if target_agent is not None and target_agent not in self.agents:
            return f"agent {target_agent!r}"
        if target_class is not None and target_class not in self.classes:
            return f"class {target_class!r}"
        return None


def roster_targets(settings: Settings) -> Targets | None:
    """The targets of ``settings``' roster and tenant; None when there is no roster file."""
    path = settings.effective_roster_path
    if not path.exists():
        return None
    return Targets.of(load_roster(path), settings.tenant)


def check_targets(settings: Settings, cards: Iterable[NewCard], *, allow_unknown: bool) -> None:
    """Refuse (UsageError, one line) the first card aimed at no agent of the roster."""
    if allow_unknown:
        return
    targets = roster_targets(settings)
    if targets is None:
        return
    for card in cards:
        stranger = targets.stranger(card.target_agent, card.target_class)
        if stranger is not None:
            raise UsageError(
                f"card {card.id}: no {stranger} in the roster of tenant {settings.tenant!r};"
                f" nothing was created ({ALLOW_FLAG} to accept it anyway)"
            )


def untargetable(store: CardStore, settings: Settings) -> dict[str, int] | None:
    """Ready cards per target no roster agent has (``agent 'x'``: 3); None without a roster.

    One grouped read of the ready cards' lanes, so ``fleet backlog stats`` and ``fleet
    doctor`` stay cheap on a big backlog. A card aimed at a known agent *and* an unknown
    class is not counted here (its lane is the agent's); the board marks it.
    """
    targets = roster_targets(settings)
    if targets is None:
        return None
    found: dict[str, int] = {}
    for lane, count in store.ready_lanes().items():
        stranger = targets.stranger_lane(lane)
        if stranger is not None:
            found[stranger] = found.get(stranger, 0) + count
    return found


def untargetable_line(found: dict[str, int]) -> str:
    """``3 ready cards for no agent in the roster: agent 'x' (2), class 'y' (1)``."""
    total = sum(found.values())
    each = ", ".join(f"{name} ({n})" for name, n in sorted(found.items()))
    return f"{total} ready card{'' if total == 1 else 's'} for no agent in the roster: {each}"
