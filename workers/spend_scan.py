"""The host's spend scan: read this host's agents' runtime records into the ledger, then
act on the budgets — events when a budget is crossed, and the over-budget flag files that
stop a Claude Code agent's turn (its PreToolUse hook, ``workers.runtime_homes``).

Run by the host worker's status collection each interval and by ``fleet spend scan``;
two at once are safe (the store's file marks are compare-and-set: the second one's batch
is refused and read again next time).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_queue.cards import EventKind
from fleet_queue.errors import ConflictError
from fleet_queue.private import ensure_private_dir
from fleet_queue.spend import budgets as budget_rules
from fleet_queue.spend.ledger import rows_of, unpriced_events, unpriced_model
from fleet_queue.spend.prices import PriceTable, load_prices, prices_path
from fleet_queue.spend.usage import FileAdvance, FileMark
from workers.evidence import write_private
from workers.runtime_homes import BUDGET_FLAG_SUFFIX, agent_home
from workers.spend_opencode import opencode_database, read_opencode
from workers.spend_reader import (
    FileRead,
    claude_files,
    codex_files,
    pi_files,
    read_claude,
    read_codex,
    read_pi,
    unread,
)

if TYPE_CHECKING:
    from fleet_queue.roster import AgentSpec, Roster
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore

log = logging.getLogger(__name__)

HOME_VARS = {"claude": "CLAUDE_CONFIG_DIR", "codex": "CODEX_HOME", "pi": "PI_CODING_AGENT_DIR"}


@dataclass
class ScanReport:
    files: int = 0
    turns: int = 0
    rows: int = 0
    conflicts: list[str] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "turns": self.turns,
            "rows": self.rows,
            "conflicts": self.conflicts,
            "held": self.held,
        }


def flag_path(run_dir: Path, agent: str) -> Path:
    """``run/<agent>.over-budget``: while it exists, the agent's PreToolUse hook refuses."""
    return run_dir / f"{agent}{BUDGET_FLAG_SUFFIX}"


def runtime_home(settings: Settings, agent: AgentSpec) -> Path | None:
    """Where the agent's runtime keeps its records (its own home; a roster env wins).
    opencode's: its data dir (``XDG_DATA_HOME``), where its database is."""
    if agent.runtime == "opencode":
        mine = agent_home(settings.home, agent.name, "opencode") / "data"
        return Path(agent.env.get("XDG_DATA_HOME") or mine)
    var = HOME_VARS.get(agent.runtime)
    if var is None:
        return None
    return Path(agent.env.get(var) or agent_home(settings.home, agent.name, agent.runtime))


def scan_host(
    settings: Settings, roster: Roster, store: CardStore, prices: PriceTable | None = None
) -> ScanReport:
    """Read every local agent's new records into the ledger, then enforce the budgets."""
    if prices is None:
        path = prices_path(settings.home, settings.prices_file)
        prices = load_prices(path, required=settings.prices_file is not None)
    report = ScanReport()
    announced: set[str] | None = None
    for agent in roster.agents_on(settings.host, settings.tenant):
        home = runtime_home(settings, agent)
        if home is None:
            continue
        marks = store.spend_marks(agent.name)
        reads = read_agent(agent.runtime, home, marks)
        if not reads:
            continue
        rows = rows_of(agent.name, [turn for read in reads for turn in read.turns], prices)
        if announced is None and any(row.cost is None for row in rows):
            announced = _unpriced_announced(store)
        events = unpriced_events(agent.name, rows, announced or set())
        advances = [FileAdvance(str(r.path), marks.get(str(r.path)), r.mark) for r in reads]
        try:
            store.record_spend(agent.name, advances, rows, events)
        except ConflictError as exc:
            report.conflicts.append(str(exc))
            continue
        if announced is not None:
            announced.update(unpriced_model(event.detail) for event in events)
        report.files += len(advances)
        report.turns += sum(len(read.turns) for read in reads)
        report.rows += len(rows)
    report.held = enforce_budgets(settings, roster, store)
    return report


def _unpriced_announced(store: CardStore) -> set[str]:
    """Models an ``unpriced_model`` event already named (said once per tenant)."""
    return {unpriced_model(e.detail) for e in store.events(kind=EventKind.UNPRICED, limit=None)}


def read_agent(runtime: str, home: Path, marks: dict[str, FileMark]) -> list[FileRead]:
    """Every record file of the agent with bytes past its mark, read from the mark on."""
    if runtime == "opencode":
        db = opencode_database(home)
        found = read_opencode(db, marks.get(str(db)))
        return [found] if found is not None else []
    if runtime == "claude":
        counted = {key for mark in marks.values() for key in mark.state.get("keys", [])}
        return [
            read_claude(path, marks.get(str(path)), counted)
            for path in claude_files(home)
            if unread(path, marks.get(str(path)))
        ]
    read, files = (read_pi, pi_files) if runtime == "pi" else (read_codex, codex_files)
    return [
        read(path, marks.get(str(path)))
        for path in files(home)
        if unread(path, marks.get(str(path)))
    ]


def enforce_budgets(settings: Settings, roster: Roster, store: CardStore) -> dict[str, str]:
    """Write the crossing events; raise or lower this host's agents' over-budget flags.
    Returns the agents held (no new card), with why."""
    now = store.now()
    budgets, states = budget_rules.budget_view(store, roster, settings, now)
    for event in budget_rules.crossing_events(store, states, now):
        store.record_event(None, event.kind, agent=event.agent, detail=event.detail)
    held = budget_rules.held_agents(states, roster, settings.tenant, settings.tenant)
    over = {a: why for a, why in held.items() if why.startswith("over budget")}
    stop = budgets is not None and budgets.stop_turn
    for agent in roster.agents_on(settings.host, settings.tenant):
        path = flag_path(settings.run_dir, agent.name)
        if stop and agent.name in over:
            ensure_private_dir(path.parent)
            write_private(path, json.dumps(refusal(over[agent.name])))
        else:
            path.unlink(missing_ok=True)
    return held


def refusal(reason: str) -> dict[str, object]:
    """What the PreToolUse hook prints: refuse the tool call and end the turn, with why."""
    why = f"fleet: {reason}. Stop now; the operator raises the budget or it resets."
    return {
        "continue": False,
        "stopReason": why,
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": "deny",
            "permissionDecisionReason": why,
        },
    }
