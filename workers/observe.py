"""Looking at an agent: tail (text), watch (read-only live view), attach (take over),
and reset (type the runtime's reset command).

``watch`` attaches a throwaway session grouped with the agent's (sharing its
window) with ``attach -r``: a read-only client sends no keys to the pane, and
the agent's window has ``window-size manual``, so no viewer ever resizes it.
``attach`` is the one verb that can type.
"""

from __future__ import annotations

import os
import subprocess

from fleet_queue.errors import HostError
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from workers.runtimes import launch_plan
from workers.tmux import ControlClient, TmuxServer, exact, pane_target


def _server_with(settings: Settings, roster: Roster, agent: str) -> TmuxServer:
    roster.known(agent)
    server = TmuxServer.for_fleet(settings, roster)
    if not server.has_session(agent):
        raise HostError(f"agent {agent!r} has no tmux session (run `fleet start {agent}`)")
    return server


def tail(settings: Settings, roster: Roster, agent: str, lines: int = 40) -> list[str]:
    """The last ``lines`` lines of the pane (history included), trailing blanks dropped."""
    server = _server_with(settings, roster, agent)
    out = server.run(
        "capture-pane", "-p", "-J", "-S", f"-{max(lines, 1)}", "-t", pane_target(agent)
    )
    while out and not out[-1].strip():
        out.pop()
    return out[-lines:] if lines > 0 else []


def watch_session_name(agent: str) -> str:
    return f"{agent}-watch-{os.getpid()}"


def watch(settings: Settings, roster: Roster, agent: str) -> int:
    """Attach read-only through a grouped throwaway session; kill it on detach."""
    server = _server_with(settings, roster, agent)
    viewer = watch_session_name(agent)
    server.run("new-session", "-d", "-t", exact(agent), "-s", viewer)
    try:
        return _interactive(server, "attach-session", "-r", "-t", exact(viewer))
    finally:
        server.call("kill-session", "-t", exact(viewer))


def attach(settings: Settings, roster: Roster, agent: str) -> int:
    """Interactive takeover: the only verb whose keys reach the agent."""
    server = _server_with(settings, roster, agent)
    return _interactive(server, "attach-session", "-t", exact(agent))


def _interactive(server: TmuxServer, *args: str) -> int:
    return subprocess.run(server.argv(*args), env=server.env(), check=False).returncode


def reset(settings: Settings, roster: Roster, agent: str) -> str:
    """Type the runtime's reset command (``/clear``, ``/new``…) and Enter; the command."""
    server = _server_with(settings, roster, agent)
    plan = launch_plan(settings, roster, roster.agent(agent))
    if not plan.reset_command:
        raise HostError(f"agent {agent!r}: runtime {plan.runtime!r} has no reset command")
    target = pane_target(agent)
    with ControlClient(server) as ctl:
        dead = ctl.command("display-message", "-p", "-t", target, "#{pane_dead}")
        if dead[:1] == ["1"]:
            raise HostError(f"agent {agent!r}: pane is dead (run `fleet start {agent}`)")
        ctl.command("send-keys", "-l", "-t", target, "--", plan.reset_command)
        ctl.command("send-keys", "-t", target, "Enter")
    return plan.reset_command
