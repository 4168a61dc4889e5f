"""``fleet ps`` across hosts: the store's agent rows joined with the roster.

Every host worker writes its own agents' rows; any machine can read them all.
A row whose host worker stopped writing is kept but marked stale (its last word
is not trusted, as in the supervisor tick), and a roster agent that no host has
reported shows as ``unreported``. The local tmux probe is ``fleet ps --local``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fleet_queue.cards import AgentStatus
from fleet_queue.roster import AgentSpec, Roster
from fleet_queue.settings import Settings
from fleet_queue.supervisor import is_fresh

if TYPE_CHECKING:
    from fleet_queue.store import CardStore


@dataclass(frozen=True)
class FleetRow:
    agent: str
    tenant_id: str
    host: str
    agent_class: str | None
    runtime: str | None
    readiness: str
    health: bool
    host_stale: bool
    in_roster: bool
    heartbeat_age: float | None
    idle_seconds: float | None
    current_card: str | None
    status_age: float | None
    unit: str | None = None
    unit_warning: bool = False
    spend_today: float | None = None
    """Dollars of priced spend today (UTC); None when it read none."""
    tokens_today: int = 0
    cost_known: bool = True
    """False when some of today's tokens are of a model with no price."""
    budget: str | None = None
    """Why the tick gives it no new card: ``over budget: ...`` or ``ahead of pace: ...``."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def spend_text(self) -> str:
        """``$0.0123`` (``+?``: some of it of a model with no price); ``-`` when none."""
        if self.spend_today is None:
            return "-"
        return f"${self.spend_today:.4f}" + ("" if self.cost_known else "+?")


@dataclass(frozen=True)
class UnitInfo:
    """What ``ps`` shows of an agent's systemd unit (from ``workers.systemd_units``)."""

    summary: str
    active_not_enabled: bool


def fleet_rows(
    store: CardStore,
    roster: Roster,
    settings: Settings,
    units: Mapping[str, UnitInfo] | None = None,
) -> list[FleetRow]:
    """One row per roster agent of this tenant, then rows of agents the roster lost."""
    now = store.now()
    statuses = {s.agent: s for s in store.agent_statuses()}
    units = units or {}
    rows = []
    for agent in roster.agents:
        if agent.tenant_or(settings.tenant) != settings.tenant:
            continue
        status = statuses.pop(agent.name, None)
        rows.append(_row(agent, status, now, settings, units.get(agent.name)))
    for status in statuses.values():
        rows.append(_orphan(status, now, settings))
    return with_spend(rows, store, roster, settings, now)


def with_spend(
    rows: list[FleetRow], store: CardStore, roster: Roster, settings: Settings, now: datetime
) -> list[FleetRow]:
    """Each row with its spend today and, when a budget holds it, why."""
    from fleet_queue.spend.budgets import agents_held
    from fleet_queue.spend.ledger import day_of
    from fleet_queue.spend.report import summed

    today = day_of(now)
    spent = {s.key: s for s in summed(store.spend_rows(today, today), "agent")}
    held = agents_held(store, roster, settings, now)
    return [
        replace(
            row,
            spend_today=spent[row.agent].cost if row.agent in spent else None,
            tokens_today=spent[row.agent].tokens.total if row.agent in spent else 0,
            cost_known=row.agent not in spent or not spent[row.agent].unpriced_tokens,
            budget=held.get(row.agent),
        )
        for row in rows
    ]


def _row(
    agent: AgentSpec,
    status: AgentStatus | None,
    now: datetime,
    settings: Settings,
    unit: UnitInfo | None,
) -> FleetRow:
    host = agent.host_or(settings.host)
    reported = status is not None and status.host == host
    fresh = reported and status is not None and is_fresh(status, now, settings)
    seen = status if reported else None
    return FleetRow(
        agent=agent.name,
        tenant_id=agent.tenant_or(settings.tenant),
        host=host,
        agent_class=agent.agent_class,
        runtime=agent.runtime,
        readiness=_readiness(seen, fresh),
        health=bool(seen and fresh and seen.health),
        host_stale=reported and not fresh,
        in_roster=True,
        heartbeat_age=_age(now, seen.heartbeat_at) if seen else None,
        idle_seconds=seen.idle_seconds if seen else None,
        current_card=seen.current_card if seen else None,
        status_age=_age(now, seen.updated_at) if seen else None,
        unit=unit.summary if unit else None,
        unit_warning=bool(unit and unit.active_not_enabled),
    )


def _orphan(status: AgentStatus, now: datetime, settings: Settings) -> FleetRow:
    """A row some host still reports for an agent the roster no longer has."""
    fresh = is_fresh(status, now, settings)
    return FleetRow(
        agent=status.agent,
        tenant_id=status.tenant_id,
        host=status.host,
        agent_class=status.agent_class,
        runtime=status.runtime,
        readiness=_readiness(status, fresh),
        health=fresh and status.health,
        host_stale=not fresh,
        in_roster=False,
        heartbeat_age=_age(now, status.heartbeat_at),
        idle_seconds=status.idle_seconds,
        current_card=status.current_card,
        status_age=_age(now, status.updated_at),
    )


def _readiness(status: AgentStatus | None, fresh: bool) -> str:
    if status is None:
        return "unreported"
    if status.readiness == "stopped":  # stopped on purpose: no host is missing
        return "stopped"
    return str(status.readiness) if fresh else "stale host"


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 1)
