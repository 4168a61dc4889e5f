"""Start, stop and check the agents' tmux sessions on this host (idempotent).

Each agent is one session named after it, one window, one pane running the
runtime directly (argv form, no shell). Only the fleet's socket is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fleet_queue.errors import HostError
from fleet_queue.roster import AgentSpec, Roster
from fleet_queue.settings import Settings
from workers.agent_marks import (
    load_marks,
    mark_stopped,
    on_operator_start,
    on_session_start,
    sessions_lock,
)
from workers.codex_daemon import stop_codex_daemon
from workers.heartbeat import heartbeat_path
from workers.runtime_homes import prepare
from workers.runtimes import LaunchPlan, check_launchable, launch_plan
from workers.sidecar import running_sidecar, spawn, stop_sidecar
from workers.tmux import TmuxServer, exact, pane_target

PANE_WIDTH = "200"
PANE_HEIGHT = "50"


@dataclass(frozen=True)
class SessionResult:
    agent: str
    action: str
    """started | respawned | running | stopped | absent | left (supervision: stopped or broken)"""
    pid: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    socket: str
    server_running: bool
    holder: bool
    missing: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.server_running and self.holder and not self.missing and not self.dead


def local_agents(
    settings: Settings, roster: Roster, names: Sequence[str] | None = None
) -> list[AgentSpec]:
    """The roster agents of this host and tenant, or exactly ``names`` (each must be local).

    With no names this is the one choice of "this host's agents" that ``fleet up`` and
    ``fleet start|stop|restart|verify`` share: ``FLEET_HOST`` and ``FLEET_TENANT``.
    """
    if not names:
        return roster.agents_on(settings.host, settings.tenant)
    chosen = []
    for name in names:
        agent = roster.known(name)
        if agent.host_or(settings.host) != settings.host:
            raise HostError(f"agent {name!r} runs on host {agent.host!r}, not on {settings.host!r}")
        chosen.append(agent)
    return chosen


def start_agents(
    settings: Settings,
    roster: Roster,
    names: Sequence[str] | None = None,
    *,
    supervised: bool = False,
) -> list[SessionResult]:
    """Open every missing session, respawn dead panes, leave live ones alone.

    An operator's start clears each agent's restart breaker and stop mark
    (``workers.agent_marks``); the host worker's restart (``supervised``) keeps them and
    leaves an agent stopped or broken since it looked.
    """
    agents = local_agents(settings, roster, names)
    plans = [launch_plan(settings, roster, agent) for agent in agents]
    for plan in plans:
        check_launchable(plan)
    server = TmuxServer.for_fleet(settings, roster)
    with sessions_lock(settings.run_dir):
        server.ensure_started()
        results = []
        for plan in plans:
            marks = load_marks(settings.run_dir, plan.agent)
            if supervised and (marks.stopped or marks.broken):
                results.append(SessionResult(plan.agent, "left"))
                continue
            result = _start_one(server, settings, plan)
            if result.action == "running":
                if not supervised:
                    on_operator_start(settings.run_dir, plan.agent)
            else:
                on_session_start(
                    settings.run_dir,
                    plan.agent,
                    reset=not supervised,
                    brief=settings.brief_at_start,
                )
            results.append(result)
        return results


def _start_one(server: TmuxServer, settings: Settings, plan: LaunchPlan) -> SessionResult:
    target = pane_target(plan.agent)
    if server.has_session(plan.agent):
        state = server.run("display-message", "-p", "-t", target, "#{pane_dead} #{pane_pid}")
        dead, _, pid_text = (state[0] if state else "1 0").partition(" ")
        if dead != "1":
            pid = int(pid_text)
            _ensure_sidecar(settings, plan, pid)
            return SessionResult(plan.agent, "running", pid)
        _fresh_evidence(settings, plan)
        server.run(
            "respawn-pane", "-k", "-t", target, "-c", str(plan.cwd), *_env_args(plan), *plan.argv
        )
        action = "respawned"
    else:
        _fresh_evidence(settings, plan)
        server.run(
            "new-session",
            "-d",
            "-s",
            plan.agent,
            "-x",
            PANE_WIDTH,
            "-y",
            PANE_HEIGHT,
            "-c",
            str(plan.cwd),
            *_env_args(plan),
            *plan.argv,
        )
        server.run("set-option", "-t", target, "@fleet_runtime", plan.runtime)
        server.run("set-option", "-w", "-t", target, "window-size", "manual")
        action = "started"
    pid = int(server.run("display-message", "-p", "-t", target, "#{pane_pid}")[0])
    _ensure_sidecar(settings, plan, pid)
    return SessionResult(plan.agent, action, pid)


def _fresh_evidence(settings: Settings, plan: LaunchPlan) -> None:
    """A new process starts with no heartbeat and, for Claude Code and Codex, its own
    home written afresh (hooks, onboarding, provider) and no evidence of the last one."""
    heartbeat_path(settings.run_dir, plan.agent).unlink(missing_ok=True)
    if plan.native_heartbeat and plan.sidecar:
        prepare(settings.run_dir, plan.agent, plan.runtime, plan.env, plan.cwd, plan.unattended)


def _env_args(plan: LaunchPlan) -> list[str]:
    args: list[str] = []
    for key, value in plan.env.items():
        args += ["-e", f"{key}={value}"]
    return args


def _ensure_sidecar(settings: Settings, plan: LaunchPlan, pid: int) -> None:
    if not plan.sidecar:
        return
    if running_sidecar(settings.run_dir, plan.agent) is None:
        spawn(plan.agent, pid, settings.run_dir, settings.heartbeat_interval)


def stop_agents(
    settings: Settings, roster: Roster, names: Sequence[str] | None = None
) -> list[SessionResult]:
    """Kill the agents' sessions (and their watch sessions); with no names, the
    whole fleet, and the server once nothing else lives on its socket."""
    agents = local_agents(settings, roster, names)
    server = TmuxServer.for_fleet(settings, roster)
    with sessions_lock(settings.run_dir):
        results = []
        groups = _session_groups(server)
        for agent in agents:
            mark_stopped(settings.run_dir, agent.name)  # before the kill: supervision leaves it
            present = server.has_session(agent.name)
            for session, group in groups:
                if group == agent.name and session != agent.name:
                    server.call("kill-session", "-t", exact(session))
            if present:
                server.run("kill-session", "-t", exact(agent.name))
            stop_sidecar(settings.run_dir, agent.name)
            stop_codex_daemon(settings.run_dir, agent.name)  # Codex leaves one per start
            results.append(SessionResult(agent.name, "stopped" if present else "absent"))
        if not names and set(server.session_names()) <= {server.holder_session}:
            server.kill_server()
        return results


def restart_agents(
    settings: Settings, roster: Roster, names: Sequence[str] | None = None
) -> list[SessionResult]:
    agents = local_agents(settings, roster, names)
    for plan in (launch_plan(settings, roster, agent) for agent in agents):
        check_launchable(plan)
    stop_agents(settings, roster, [a.name for a in agents])
    return start_agents(settings, roster, [a.name for a in agents])


def verify(settings: Settings, roster: Roster) -> VerifyReport:
    """Every local roster agent has its session with a live pane, and the holder is up."""
    server = TmuxServer.for_fleet(settings, roster)
    running = server.is_running()
    sessions = set(server.session_names()) if running else set()
    missing, dead = [], []
    for agent in local_agents(settings, roster):
        if agent.name not in sessions:
            missing.append(agent.name)
        elif server.run("display-message", "-p", "-t", pane_target(agent.name), "#{pane_dead}")[
            :1
        ] == ["1"]:
            dead.append(agent.name)
    return VerifyReport(
        socket=server.socket_name,
        server_running=running,
        holder=server.holder_session in sessions,
        missing=missing,
        dead=dead,
    )


def _session_groups(server: TmuxServer) -> list[tuple[str, str]]:
    if not server.socket_path.exists():
        return []
    proc = server.call("list-sessions", "-F", "#{session_name}\t#{session_group}")
    rows = []
    for line in proc.stdout.splitlines() if proc.returncode == 0 else []:
        name, _, group = line.partition("\t")
        rows.append((name, group))
    return rows
