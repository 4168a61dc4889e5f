"""The main process of an agent's systemd unit: wait while the agent's pane lives.

tmux, not the unit, is the pane's parent, so systemd cannot see an agent die unless
some process of the unit ends with it. ``wait_while_alive`` is that process: it
checks the pane's process every ``interval`` seconds (a signal 0, no tmux call) and
asks tmux only when that process is gone — a pane the host worker respawned
meanwhile has a new process, and the wait goes on with it.
"""

from __future__ import annotations

import time

from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from workers.heartbeat import pid_alive
from workers.tmux import TmuxServer, pane_target

WAIT_INTERVAL = 2.0


def pane_process(server: TmuxServer, agent: str) -> int | None:
    """The pid running in the agent's pane; None when its session is gone or its pane dead."""
    proc = server.call(
        "display-message", "-p", "-t", pane_target(agent), "#{pane_dead} #{pane_pid}"
    )
    dead, _, pid = proc.stdout.strip().partition(" ")
    if proc.returncode != 0 or dead != "0" or not pid.isdigit():
        return None
    return int(pid)


def wait_while_alive(
    settings: Settings, roster: Roster, agent: str, interval: float = WAIT_INTERVAL
) -> str:
    """Return, saying why, once the agent's pane has no live process."""
    server = TmuxServer.for_fleet(settings, roster)
    while True:
        pid = pane_process(server, agent)
        if pid is None:
            return f"agent {agent}: its session is gone or its pane is dead"
        while pid_alive(pid):
            time.sleep(interval)
