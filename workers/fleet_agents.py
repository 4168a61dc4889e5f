"""This host's agents for ``fleet up``, ``fleet down`` and ``fleet demo``: start them all,
stop them all and the fleet's tmux server with them.

Stopping reads the roster again, so an agent added while the fleet ran
(``fleet agent add``) is stopped too; then the tmux server is killed, whatever
else was left on its socket (the holder, a watch session): the socket is the fleet's,
and a server left behind after the fleet stopped is an orphan.
"""

from __future__ import annotations

import contextlib

from fleet_queue.errors import FleetError
from fleet_queue.roster import load_roster
from fleet_queue.settings import Settings
from fleet_queue.up import HostAgents
from workers.sessions import start_agents, stop_agents
from workers.tmux import TmuxServer


def start_host_agents(settings: Settings) -> None:
    start_agents(settings, load_roster(settings.effective_roster_path))


def stop_host_agents(settings: Settings) -> None:
    roster = None
    with contextlib.suppress(FleetError):  # a roster broken meanwhile must not keep tmux up
        roster = load_roster(settings.effective_roster_path)
        stop_agents(settings, roster)
    TmuxServer.for_fleet(settings, roster).kill_server()


HOST_AGENTS = HostAgents(start=start_host_agents, stop=stop_host_agents)
