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
(its host worker stopped restarting it), ``briefing`` (a new pane not yet briefed), and
an agent paused by name (``fleet agent pause``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fleet_queue.roster import Roster
from fleet_queue.spend.budgets import agents_held

if TYPE_CHECKING:
    from fleet_queue.cards import AgentStatus, Claim, ClaimRequest
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore

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


NOT_AVAILABLE = frozenset({"paused", "broken", "briefing"})
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
    roster: Roster,
    statuses: Sequence[AgentStatus],
    leased: set[str],
    settings: Settings,
) -> list[AgentStatus]:
    """Roster agents of this tenant whose host says alive and healthy, with no lease."""
    by_name = {status.agent: status for status in statuses}
    ready: list[AgentStatus] = []
    for agent in roster.agents:
        if agent.tenant_or(settings.tenant) != settings.tenant or agent.name in leased:
            continue
        status = by_name.get(agent.name)
        if status is None or status.host != agent.host_or(settings.host):
            continue
        if status.pane_alive and status.health and status.readiness not in NOT_AVAILABLE:
            ready.append(status)
    return ready


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
    """One pass; never dispatches while the fleet is paused."""
    started = time.perf_counter()
    result = TickResult()
    view = store.tick_view()  # pause, agent rows, clock and leases in one read
    if view.pause.paused:
        result.paused = True
        return result
    statuses = fresh_statuses(view.statuses, view.now, settings)
    agents = [
        status
        for status in available_agents(roster, statuses, view.leased, settings)
        if status.agent not in view.held  # paused by name
    ]
    if agents:  # over budget (or ahead of pace): no new card (fleet_queue.spend.budgets)
        held = agents_held(store, roster, settings, view.now)
        agents = [status for status in agents if status.agent not in held]
    result.candidates = len(agents)
    if agents:
        for claim in store.claim_batch(
            claim_requests(agents, roster, settings.lease_ttl), unless_paused=True
        ):
            dispatch(claim)
            result.claims.append(claim.card.id)
    result.seconds = time.perf_counter() - started
    return result
