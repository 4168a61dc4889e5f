"""``fleet doctor``'s checks of this host: tmux, each local agent's runtime, the pause file.

Read-only, like the rest of the doctor (``fleet_queue.doctor``): it asks tmux whether
the fleet's server runs and resolves each agent's launch command, without starting
anything.
"""

from __future__ import annotations

import shutil
import subprocess

from fleet_queue.doctor import Check, fail, guarded, ok, warn
from fleet_queue.errors import FleetError
from fleet_queue.pause import host_paused, paused_file
from fleet_queue.roster import Roster, load_roster
from fleet_queue.settings import Settings
from workers.runtimes import check_launchable, launch_plan
from workers.systemd_units import CONNECTOR_UNIT, SYSTEMCTL_TIMEOUT, user_manager_unavailable
from workers.tmux import TmuxServer


def check_tmux(settings: Settings, roster: Roster) -> Check:
    if shutil.which("tmux") is None:
        return fail("tmux", "tmux is not installed", "apt-get install tmux")
    server = TmuxServer.for_fleet(settings, roster)
    if not server.is_running():
        return warn("tmux", f"no fleet server on socket {server.socket_name!r}", "fleet start")
    local = roster.agents_on(settings.host, settings.tenant)
    missing = [a.name for a in local if not server.has_session(a.name)]
    if missing:
        return warn("tmux", f"no session for {', '.join(missing)}", "fleet start")
    return ok("tmux", f"socket {server.socket_name!r}: {len(local)} agent sessions")


def check_runtimes(settings: Settings, roster: Roster) -> Check:
    agents_by_problem: dict[str, list[str]] = {}
    for agent in roster.agents_on(settings.host, settings.tenant):
        try:
            check_launchable(launch_plan(settings, roster, agent))
        except FleetError as exc:
            problem = exc.message.removeprefix(f"agent {agent.name!r}: ")
            agents_by_problem.setdefault(problem, []).append(agent.name)
    if agents_by_problem:
        detail = "; ".join(f"{p} ({', '.join(a)})" for p, a in agents_by_problem.items())
        return fail("runtimes", detail, "install the runtime, or change the roster")
    return ok("runtimes", "every local agent's command and working directory are there")


def check_host_pause(settings: Settings) -> Check:
    if host_paused(settings):
        return warn("host pause", f"{paused_file(settings)} exists", "fleet resume on this host")
    return ok("host pause", "none")


def connector_unit_active() -> bool | None:
    """Whether ``fleet-connector.service`` runs; None when there is no user systemd to ask."""
    systemctl = shutil.which("systemctl")
    if systemctl is None or user_manager_unavailable() is not None:
        return None
    done = subprocess.run(
        [systemctl, "--user", "is-active", "--quiet", CONNECTOR_UNIT],
        capture_output=True,
        timeout=SYSTEMCTL_TIMEOUT,
        check=False,
    )
    return done.returncode == 0


def host_checks(settings: Settings) -> list[Check]:
    try:
        roster = load_roster(settings.effective_roster_path)
    except FleetError:
        return [guarded("host pause", lambda: check_host_pause(settings))]  # roster check says why
    return [
        guarded("tmux", lambda: check_tmux(settings, roster)),
        guarded("runtimes", lambda: check_runtimes(settings, roster)),
        guarded("host pause", lambda: check_host_pause(settings)),
    ]
