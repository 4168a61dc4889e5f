"""The supervisor tick: match ready cards to available agents, claim, dispatch.

Available means: in the roster, its host reports the pane alive and the
heartbeat healthy, and it holds no open lease. The lease is the authority on
"busy" — a heartbeat row can lag the store by one status interval, the lease
cannot. Matching order (target agent, then role, then priority and age) is
the store's claim order; the tick only decides *who* asks, and whether it may take
a card aimed at nobody: the orchestrator delegates and the enhancer does no delivery
work, so they take only cards aimed at them or their class, unless their roster entry
says ``takes_untargeted: true`` (``AgentSpec.takes_untargeted``).

Not available, whatever the pane says: readiness ``paused`` (host paused), ``broken``
(its host worker stopped restarting it), ``briefing`` (a new pane not yet briefed),
``waiting`` (its runtime asks a person, in a turn no card started: the prompt has the
keyboard), and an agent paused by name (``fleet agent pause``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fleet_queue.roster import AgentSpec, Roster
from fleet_queue.spend.budgets import agents_held

if TYPE_CHECKING:
    from fleet_queue.cards import AgentStatus, Claim, ClaimRequest
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore
    from fleet_queue.store.read_models import TickView

Dispatch = Callable[["Claim"], None]


@dataclass
class TickResult:
    paused: bool = False
    candidates: int = 0
    claims: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "paused": self.paused,
            "candidates": self.candidates,
            "claimed": self.claims,
            "ms": round(self.seconds * 1000, 2),
        }


NOT_AVAILABLE = frozenset({"paused", "broken", "briefing", "waiting"})
"""Readiness values the tick never claims for (see the module's docstring)."""

STALE_HOST_INTERVALS = 4
"""A status row older than this many host-status intervals means its host worker is gone."""


def fresh_statuses(
    statuses: Sequence[AgentStatus], now: datetime, settings: Settings
) -> list[AgentStatus]:
    """Rows a live host worker refreshed lately; a dead host's last word is not trusted."""
    return [s for s in statuses if is_fresh(s, now, settings)]


def is_fresh(status: AgentStatus, now: datetime, settings: Settings) -> bool:
    """True when the row's host worker wrote it within the staleness window."""
    limit = timedelta(seconds=settings.host_status_interval * STALE_HOST_INTERVALS + 1.0)
    return status.updated_at is not None and now - status.updated_at <= limit


def available_agents(
    agents: Sequence[AgentSpec],
    statuses: Sequence[AgentStatus],
    leased: set[str],
    settings: Settings,
) -> list[AgentStatus]:
    """Of ``agents`` (roster entries), those of this tenant whose host says alive and
    healthy, with no lease; in the given order."""
    by_name = {status.agent: status for status in statuses}
    ready: list[AgentStatus] = []
    for agent in agents:
        if agent.tenant_or(settings.tenant) != settings.tenant or agent.name in leased:
            continue
        status = by_name.get(agent.name)
        if status is None or status.host != agent.host_or(settings.host):
            continue
        if status.pane_alive and status.health and status.readiness not in NOT_AVAILABLE:
            ready.append(status)
    return ready


class Demand:
    """What the lanes with work can give, handed out as ``CardStore.claim_batch`` would:
    an agent takes from its own lane, else its class's, else everyone's (if it takes
    untargeted cards). An agent that would get nothing is not asked for at all."""

    def __init__(self, lanes: dict[str, int]) -> None:
        self.left = dict(lanes)

    def lanes_of(self, spec: AgentSpec) -> list[str]:
        """The lanes with work ``spec`` may take from, best first."""
        found = [f"a:{spec.name}"]
        if spec.agent_class:
            found.append(f"c:{spec.agent_class}")
        if spec.takes_untargeted_cards:
            found.append("")
        return [lane for lane in found if lane in self.left]

    def take(self, spec: AgentSpec) -> bool:
        for lane in self.lanes_of(spec):
            if self.left[lane] > 0:
                self.left[lane] -= 1
                return True
        return False

    @property
    def shared_left(self) -> int:
        """Cards left in class and everyone's lanes (an own lane waits for its one agent)."""
        return sum(n for lane, n in self.left.items() if not lane.startswith("a:"))


FIRST_READ = 32
"""Agent rows the tick reads at first beyond the own-lane agents (then twice as many each
round): enough for a few cards aimed at anyone, a handful of rows instead of the fleet's."""


def choose_agents(
    store: CardStore, candidates: list[AgentSpec], view: TickView, settings: Settings
) -> list[AgentStatus]:
    """Available agents for the lanes' cards, in roster order, reading only as many status
    rows as it takes: agents with their own card first, then the others until the class
    and shared lanes are served (or the candidates run out)."""
    demand = Demand(view.lanes)
    own = [spec for spec in candidates if f"a:{spec.name}" in view.lanes]
    rest = [spec for spec in candidates if f"a:{spec.name}" not in view.lanes]
    chosen: set[str] = set()
    statuses: dict[str, AgentStatus] = {}
    batch, pos, size = own, 0, max(FIRST_READ, 2 * demand.shared_left)
    while True:
        batch = batch + rest[pos : pos + size]
        pos += size
        rows = fresh_statuses(store.tick_agents([s.name for s in batch]), view.now, settings)
        for status in available_agents(batch, rows, view.leased, settings):
            statuses[status.agent] = status
        for spec in batch:
            if spec.name in statuses and demand.take(spec):
                chosen.add(spec.name)
        if demand.shared_left == 0 or pos >= len(rest):
            break
        batch, size = [], size * 2
    return [statuses[spec.name] for spec in candidates if spec.name in chosen]


def claim_requests(
    agents: Sequence[AgentStatus], roster: Roster, lease_ttl: float
) -> list[ClaimRequest]:
    from fleet_queue.cards import ClaimRequest

    specs = {spec.name: spec for spec in roster.agents}  # one pass: roster.agent() is a scan
    requests = []
    for status in agents:
        spec = specs.get(status.agent) or roster.agent(status.agent)  # unknown: RosterError
        requests.append(
            ClaimRequest(
                agent=status.agent,
                agent_class=spec.agent_class,
                host=status.host,
                lease_ttl=lease_ttl,
                take_untargeted=spec.takes_untargeted_cards,
            )
        )
    return requests


def leased_agents(store: CardStore) -> set[str]:
    """Agents holding an open lease: busy, whatever their last heartbeat said."""
    return store.lease_owners()


def run_tick(
    store: CardStore, roster: Roster, settings: Settings, dispatch: Dispatch
) -> TickResult:
    """One pass; never dispatches while the fleet is paused.

    Reads what it needs only: the lanes with claimable cards first (none: done, no agent
    row read), then the status rows of the agents that could take them, a few at a time
    when the cards are few (``choose_agents``), so a nudged tick for one card at 1,000
    free agents reads a handful of rows and asks the store for one claim.
    """
    started = time.perf_counter()
    result = TickResult()
    mine = [a for a in roster.agents if a.tenant_or(settings.tenant) == settings.tenant]
    view = store.tick_view(cap=len(mine))  # pause, clock, leases, holds and lanes, one read
    if view.pause.paused:
        result.paused = True
        return result
    agents: list[AgentStatus] = []
    if view.lanes:
        demand = Demand(view.lanes)
        candidates = [
            spec
            for spec in mine
            if spec.name not in view.leased
            and spec.name not in view.held  # paused by name
            and demand.lanes_of(spec)
        ]
        if candidates:  # over budget (or ahead of pace): no new card (fleet_queue.spend.budgets)
            held = agents_held(store, roster, settings, view.now)
            candidates = [spec for spec in candidates if spec.name not in held]
        agents = choose_agents(store, candidates, view, settings) if candidates else []
    result.candidates = len(agents)
    if agents:
        for claim in store.claim_batch(
            claim_requests(agents, roster, settings.lease_ttl), unless_paused=True
        ):
            dispatch(claim)
            result.claims.append(claim.card.id)
    result.seconds = time.perf_counter() - started
    return result
