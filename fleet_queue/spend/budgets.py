"""Budgets: caps on spend per agent, class, tenant and the whole fleet, per day and month.

``$FLEET_HOME/budgets.yaml`` (``FLEET_BUDGETS_FILE``); amounts in US dollars of priced
spend, or in tokens (every token, priced or not)::

    warn_at: 0.8          # a budget_warning event at this share
    stop_turn: false      # at 100%: also stop the agent's current turn (Claude Code hook)
    pacing: false         # even pacing: no new card while ahead of the day's pace
    fleet: {day: 200, month: 4000}
    tenants: {default: {day: 100}}
    classes: {worker: {day: 20, day_tokens: 5000000}}
    agents: {w1: {day: 5, month: 80}}

At the warning share an event is written once per budget and period; at 100% an
``over_budget`` event, and the tick gives no new card to any agent the budget covers until
the period turns (UTC day, UTC month). Days and months are the ledger's UTC days.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet_queue.cards import EventKind
from fleet_queue.errors import ConfigError
from fleet_queue.spend.ledger import day_of, month_start
from fleet_queue.spend.prices import SAFE_LOADER
from fleet_queue.spend.usage import LedgerEvent

if TYPE_CHECKING:
    from fleet_queue.roster import Roster
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore
    from fleet_queue.store.spend_ledger import SpendTotal

BUDGETS_FILE = "budgets.yaml"
Period = Literal["day", "month"]
Level = Literal["ok", "warning", "over"]
PACE_SLACK_HOURS = 1.0
"""Even pacing lets an agent run this many hours' share ahead of the clock."""


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    day: float | None = Field(default=None, gt=0)
    month: float | None = Field(default=None, gt=0)
    day_tokens: int | None = Field(default=None, gt=0)
    month_tokens: int | None = Field(default=None, gt=0)


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    warn_at: float = Field(default=0.8, gt=0, le=1)
    stop_turn: bool = False
    pacing: bool = False
    fleet: Limit | None = None
    tenants: dict[str, Limit] = Field(default_factory=dict)
    classes: dict[str, Limit] = Field(default_factory=dict)
    agents: dict[str, Limit] = Field(default_factory=dict)

    def scopes(self, tenant: str) -> list[tuple[str, str, Limit]]:
        """(kind, name, limit) of every budget that bears on ``tenant``'s agents."""
        found = [("fleet", "", self.fleet)] if self.fleet else []
        if tenant in self.tenants:
            found.append(("tenant", tenant, self.tenants[tenant]))
        found += [("class", name, limit) for name, limit in self.classes.items()]
        found += [("agent", name, limit) for name, limit in self.agents.items()]
        return found


@dataclass(frozen=True)
class BudgetState:
    """One budget in one period: what is spent of it, and what that means."""

    scope: str
    name: str
    period: Period
    unit: Literal["usd", "tokens"]
    spent: float
    limit: float
    level: Level
    ahead: bool = False
    """Even pacing: more of the day's budget spent than the hours passed allow."""

    @property
    def subject(self) -> str:
        who = self.scope if not self.name else f"{self.scope} {self.name}"
        return f"{who} {self.period}" + (" tokens" if self.unit == "tokens" else "")

    def describe(self) -> str:
        if self.unit == "usd":
            return f"{self.subject}: ${self.spent:.4f} of ${self.limit:g}"
        return f"{self.subject}: {self.spent:.0f} of {self.limit:.0f}"


def budgets_path(settings: Settings) -> Path:
    return settings.budgets_file or settings.home / BUDGETS_FILE


def load_budgets(settings: Settings) -> Budgets | None:
    """The budgets file, or None when there is none (the tick then reads no spend)."""
    path = budgets_path(settings)
    try:
        info = path.stat()
    except FileNotFoundError:
        if settings.budgets_file is not None:
            raise ConfigError(f"{path}: no such budgets file (FLEET_BUDGETS_FILE)") from None
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the budgets file ({exc.strerror})") from None
    return _parse(str(path), info.st_mtime_ns, info.st_size)


@lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int, size: int) -> Budgets:
    """Parsed once per version of the file (the tick asks every pass)."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
        return Budgets.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the budgets file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML ({type(exc).__name__})") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "budgets"
        raise ConfigError(f"{path}: {where}: {error['msg']}") from None


def _day_share(now: datetime) -> float:
    """How much of the UTC day has passed, plus the pacing slack (at most 1)."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    hours = (now - start).total_seconds() / 3600 + PACE_SLACK_HOURS
    return min(hours / 24, 1.0)


def evaluate(
    budgets: Budgets,
    totals: Sequence[SpendTotal],
    roster: Roster,
    tenant: str,
    now: datetime,
) -> list[BudgetState]:
    """Every budget of ``tenant``'s view in each of its periods and units."""
    members = _members(totals, roster, tenant)
    states = []
    for scope, name, limit in budgets.scopes(tenant):
        covered = members.get((scope, name), [])
        for period, unit, amount in _amounts(limit):
            spent = _spent(covered, period, unit)
            level = _level(budgets, spent, amount)
            paced = budgets.pacing and period == "day" and level != "over"
            ahead = paced and spent > amount * _day_share(now)
            states.append(BudgetState(scope, name, period, unit, spent, amount, level, ahead))
    return states


def _members(
    totals: Sequence[SpendTotal], roster: Roster, tenant: str
) -> dict[tuple[str, str], list[SpendTotal]]:
    """The totals each scope covers, keyed (scope, name): one pass, not one per budget."""
    classes = {a.name: a.agent_class for a in roster.agents}
    members: dict[tuple[str, str], list[SpendTotal]] = {("fleet", ""): list(totals)}
    for total in totals:
        members.setdefault(("tenant", total.tenant_id), []).append(total)
        if total.tenant_id != tenant:
            continue
        members.setdefault(("agent", total.agent), []).append(total)
        if total.agent in classes:
            members.setdefault(("class", classes[total.agent]), []).append(total)
    return members


def _amounts(limit: Limit) -> Iterable[tuple[Period, Literal["usd", "tokens"], float]]:
    for period, unit, amount in (
        ("day", "usd", limit.day),
        ("month", "usd", limit.month),
        ("day", "tokens", limit.day_tokens),
        ("month", "tokens", limit.month_tokens),
    ):
        if amount is not None:
            yield period, unit, float(amount)  # type: ignore[misc]


def _spent(members: Sequence[SpendTotal], period: Period, unit: str) -> float:
    if unit == "usd":
        return sum(t.day_cost if period == "day" else t.month_cost for t in members)
    return float(sum(t.day_tokens if period == "day" else t.month_tokens for t in members))


def _level(budgets: Budgets, spent: float, limit: float) -> Level:
    if spent >= limit:
        return "over"
    return "warning" if spent >= budgets.warn_at * limit else "ok"


def held_agents(
    states: Sequence[BudgetState], roster: Roster, tenant: str, default_tenant: str
) -> dict[str, str]:
    """Agent -> why it gets no new card: a budget covering it is spent (or ahead of pace)."""
    holding: dict[tuple[str, str], BudgetState] = {}
    for state in states:
        if state.level == "over" or state.ahead:
            holding.setdefault((state.scope, state.name), state)
    if not holding:
        return {}
    held: dict[str, str] = {}
    for agent in roster.agents:
        agent_tenant = agent.tenant_or(default_tenant)
        if agent_tenant != tenant:
            continue
        scopes = [
            ("agent", agent.name),
            ("class", agent.agent_class),
            ("tenant", agent_tenant),
            ("fleet", ""),
        ]
        hold = next((holding[key] for key in scopes if key in holding), None)
        if hold is not None:
            word = "over budget" if hold.level == "over" else "ahead of pace"
            held[agent.name] = f"{word}: {hold.describe()}"
    return held


def budget_view(
    store: CardStore, roster: Roster, settings: Settings, now: datetime
) -> tuple[Budgets | None, list[BudgetState]]:
    """The budgets and their states now; (None, []) when no budgets file exists."""
    budgets = load_budgets(settings)
    if budgets is None:
        return None, []
    today = day_of(now)
    totals = store.spend_totals(month_start(today), today)
    return budgets, evaluate(budgets, totals, roster, settings.tenant, now)


def agents_held(
    store: CardStore, roster: Roster, settings: Settings, now: datetime
) -> dict[str, str]:
    """What the tick asks: agents that get no new card, and why (empty: no budgets)."""
    _budgets, states = budget_view(store, roster, settings, now)
    return held_agents(states, roster, settings.tenant, settings.tenant) if states else {}


def crossing_events(
    store: CardStore, states: Sequence[BudgetState], now: datetime
) -> list[LedgerEvent]:
    """A warning or over-budget event for each budget that reached it this period and has
    not said so yet (one per budget, level and period)."""
    today = day_of(now)
    since = datetime.fromisoformat(month_start(today)).replace(tzinfo=UTC)
    day_start = datetime.fromisoformat(today).replace(tzinfo=UTC)
    said: set[tuple[str, str]] = set()
    for kind in (EventKind.BUDGET_WARNING, EventKind.OVER_BUDGET):
        for event in store.events(kind=kind, since=since, limit=None):
            subject = (event.detail or "").split(":", 1)[0]
            if subject.removesuffix(" tokens").endswith(" day") and event.at < day_start:
                continue  # yesterday's word on a daily budget
            said.add((kind.value, subject))
    kinds = {"warning": EventKind.BUDGET_WARNING, "over": EventKind.OVER_BUDGET}
    events = []
    for state in states:
        crossed = kinds.get(state.level)
        if crossed is None or (crossed.value, state.subject) in said:
            continue
        agent = state.name if state.scope == "agent" else None
        events.append(LedgerEvent(crossed, agent, state.describe()))
    return events
