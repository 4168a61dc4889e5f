"""What each agent on this host is doing, joined from tmux, the process table and
its heartbeat: the rows of ``fleet ps`` and of the dispatch engine's host status.

Readiness, from worst to best:

- ``dead``: no session, or the pane's process has exited;
- ``unknown``: the pane lives but no heartbeat file was ever written;
- ``stale``: the heartbeat is older than 3 intervals, or its pid is gone;
- ``waiting``: heartbeat ``waiting``: the runtime asks a person (a permission prompt);
- ``working``: heartbeat ``busy``, or the pane's output changed within the busy window;
- ``available``: healthy, idle pane: a card may be delivered.

Two marks of the host worker's supervision (``workers.agent_marks``) override: a dead
agent it gave up restarting is ``broken``; an available one still owed its brief is
``briefing``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from fleet_queue.errors import FleetError
from fleet_queue.roster import AgentSpec, Roster
from fleet_queue.settings import Settings
from workers.agent_marks import load_marks
from workers.heartbeat import Heartbeat, is_healthy, pid_alive, read_heartbeat, utcnow
from workers.runtimes import LaunchPlan, launch_plan
from workers.tmux import TmuxServer

READINESS = ("working", "waiting", "available", "stale", "dead", "unknown", "broken", "briefing")
BUSY_WINDOW = 2.0
"""Seconds since the pane's last output under which it counts as working."""

_FIELDS = (
    "#{session_name}",
    "#{window_active}",
    "#{pane_active}",
    "#{pane_dead}",
    "#{pane_pid}",
    "#{pane_current_command}",
    "#{window_activity}",
    "#{session_group}",
)


@dataclass(frozen=True)
class PaneInfo:
    session: str
    dead: bool
    pid: int | None
    current_command: str
    activity: int
    group: str


@dataclass(frozen=True)
class AgentProbe:
    """One agent's observed state; the fields of the store's ``AgentStatus`` and more."""

    tenant_id: str
    host: str
    agent: str
    runtime: str
    agent_class: str
    session_present: bool | None
    pane_alive: bool | None
    pid: int | None
    pane_command: str | None
    process: str | None
    idle_seconds: float | None
    heartbeat_at: datetime | None
    heartbeat_age: float | None
    health: bool
    heartbeat_status: str | None
    readiness: str
    drift: bool | None
    current_card: str | None
    updated_at: datetime
    remote: bool = False

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        for key in ("heartbeat_at", "updated_at"):
            value = data[key]
            data[key] = value.isoformat() if isinstance(value, datetime) else None
        return data


def list_panes(server: TmuxServer) -> dict[str, PaneInfo]:
    """The active pane of every session on the fleet socket, by session name."""
    if not server.socket_path.exists():
        return {}
    proc = server.call("list-panes", "-a", "-F", "\t".join(_FIELDS))
    if proc.returncode != 0:
        return {}
    panes: dict[str, PaneInfo] = {}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != len(_FIELDS) or parts[1] != "1" or parts[2] != "1":
            continue
        name, _, _, dead, pid, command, activity, group = parts
        panes[name] = PaneInfo(
            session=name,
            dead=dead == "1",
            pid=int(pid) if pid.isdigit() else None,
            current_command=command,
            activity=int(activity) if activity.isdigit() else 0,
            group=group,
        )
    return panes


def process_name(pid: int | None) -> str | None:
    if pid is None:
        return None
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or None
    except OSError:
        return None


def classify(
    pane: PaneInfo | None,
    hb: Heartbeat | None,
    healthy: bool,
    idle: float | None,
    busy_window: float = BUSY_WINDOW,
    trust_status: bool = False,
) -> str:
    """``trust_status``: the heartbeat's status is the runtime's own word (stub, hooks,
    rollout), so a pane that redraws (a TUI's clock, a spinner) is no sign of work."""
    if pane is None or pane.dead or (pane.pid is not None and not pid_alive(pane.pid)):
        return "dead"
    if hb is None:
        return "unknown"
    if not healthy or not pid_alive(hb.pid):
        return "stale"
    if hb.status == "waiting":
        return "waiting"
    if hb.status == "busy" or (not trust_status and idle is not None and idle < busy_window):
        return "working"
    return "available"


def probe_agents(
    settings: Settings,
    roster: Roster,
    *,
    include_remote: bool = False,
    busy_window: float = BUSY_WINDOW,
) -> list[AgentProbe]:
    """One row per roster agent on this host (and, if asked, a bare row per remote one)."""
    server = TmuxServer.for_fleet(settings, roster)
    panes = list_panes(server)
    now = utcnow()
    rows = []
    for agent in roster.agents:
        if agent.host_or(settings.host) != settings.host:
            if include_remote:
                rows.append(_remote_row(settings, agent, now))
            continue
        rows.append(_probe_one(settings, roster, agent, panes.get(agent.name), now, busy_window))
    return rows


def _probe_one(
    settings: Settings,
    roster: Roster,
    agent: AgentSpec,
    pane: PaneInfo | None,
    now: datetime,
    busy_window: float,
) -> AgentProbe:
    hb = read_heartbeat(settings.run_dir, agent.name)
    healthy = is_healthy(hb, settings.heartbeat_interval, now)
    alive = pane is not None and not pane.dead
    idle = max(time.time() - pane.activity, 0.0) if alive and pane and pane.activity else None
    process = process_name(pane.pid) if alive and pane else None
    plan = _plan(settings, roster, agent)
    trust = plan is not None and plan.native_heartbeat and agent.runtime != "stub"
    readiness = classify(pane, hb, healthy, idle, busy_window, trust_status=trust)
    marks = load_marks(settings.run_dir, agent.name)
    if readiness == "dead" and marks.broken:
        readiness = "broken"
    elif readiness == "available" and marks.brief_pending:
        readiness = "briefing"
    return AgentProbe(
        tenant_id=agent.tenant_or(settings.tenant),
        host=settings.host,
        agent=agent.name,
        runtime=agent.runtime,
        agent_class=agent.agent_class,
        session_present=pane is not None,
        pane_alive=alive and readiness not in ("dead", "broken"),
        pid=pane.pid if pane else None,
        pane_command=pane.current_command if alive and pane else None,
        process=process,
        idle_seconds=round(idle, 1) if idle is not None else None,
        heartbeat_at=hb.ts if hb else None,
        heartbeat_age=round(hb.age(now), 2) if hb else None,
        health=healthy and readiness not in ("dead", "stale", "broken"),
        heartbeat_status=hb.status if hb else None,
        readiness=readiness,
        drift=_drift(plan, process) if alive else None,
        current_card=hb.card if hb and hb.status in ("busy", "waiting") else None,
        updated_at=now,
    )


class _Plans:
    """Launch plans of the current settings and roster, built once per agent.

    A status round probes every agent every interval; building its plan (the pane's
    environment, ``shlex`` over the command) was a third of a round's CPU at 100 agents
    per host (docs/benchmarks.md, scale). A new settings or roster object (the roster
    file changed) starts a new cache."""

    def __init__(self) -> None:
        self.key: tuple[Settings, Roster] | None = None
        self.plans: dict[str, LaunchPlan | None] = {}
        self.lock = threading.Lock()

    def get(self, settings: Settings, roster: Roster, agent: AgentSpec) -> LaunchPlan | None:
        with self.lock:
            key = self.key
            if key is None or key[0] is not settings or key[1] is not roster:
                self.key, self.plans = (settings, roster), {}
            if agent.name not in self.plans:
                try:
                    self.plans[agent.name] = launch_plan(settings, roster, agent)
                except FleetError:
                    self.plans[agent.name] = None
            return self.plans[agent.name]


_plans = _Plans()


def _plan(settings: Settings, roster: Roster, agent: AgentSpec) -> LaunchPlan | None:
    return _plans.get(settings, roster, agent)


def _drift(plan: LaunchPlan | None, process: str | None) -> bool | None:
    """True when the pane's process is not what the roster's runtime would run."""
    if process is None or plan is None:
        return None
    return process not in plan.process_names


def _remote_row(settings: Settings, agent: AgentSpec, now: datetime) -> AgentProbe:
    return AgentProbe(
        tenant_id=agent.tenant_or(settings.tenant),
        host=agent.host_or(settings.host),
        agent=agent.name,
        runtime=agent.runtime,
        agent_class=agent.agent_class,
        session_present=None,
        pane_alive=None,
        pid=None,
        pane_command=None,
        process=None,
        idle_seconds=None,
        heartbeat_at=None,
        heartbeat_age=None,
        health=False,
        heartbeat_status=None,
        readiness="unknown",
        drift=None,
        current_card=None,
        updated_at=now,
        remote=True,
    )


def unmanaged_sessions(settings: Settings, roster: Roster) -> list[str]:
    """Sessions on the fleet socket that are neither a roster agent nor the holder."""
    server = TmuxServer.for_fleet(settings, roster)
    known = {*roster.names(), server.holder_session}
    return [name for name in server.session_names() if name not in known]


def unmanaged_rows(settings: Settings, roster: Roster) -> list[dict[str, object]]:
    """``fleet ps``'s extra rows: every unmanaged session with what its pane runs."""
    server = TmuxServer.for_fleet(settings, roster)
    panes = list_panes(server)
    rows: list[dict[str, object]] = []
    for name in unmanaged_sessions(settings, roster):
        pane = panes.get(name)
        rows.append(
            {
                "session": name,
                "host": settings.host,
                "tenant_id": settings.tenant,
                "group": pane.group if pane else None,
                "pane_alive": bool(pane and not pane.dead),
                "pid": pane.pid if pane else None,
                "pane_command": pane.current_command if pane else None,
                "idle_seconds": round(max(time.time() - pane.activity, 0.0), 1)
                if pane and pane.activity
                else None,
            }
        )
    return rows
