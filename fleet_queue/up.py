"""``fleet up``: everything one host needs, in the foreground, with a live summary.

Starts the embedded broker (unless an external one is configured), the
roster's agent sessions on this host, a host worker and beat; restarts a child
that dies; stops all of it cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fleet_queue.celery_control import wait_for_worker
from fleet_queue.composition import open_card_store
from fleet_queue.errors import FleetError
from fleet_queue.processes import FleetProcesses
from fleet_queue.roster import load_roster
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.store import CardStore


@contextmanager
def running_fleet(
    settings: Settings, with_beat: bool = True, keep_agents: bool = False
) -> Iterator[tuple[CardStore, FleetProcesses]]:
    """The fleet running on this host for the duration of the block."""
    from workers.sessions import local_agents, start_agents, stop_agents

    roster = load_roster(settings.effective_roster_path)
    store = open_card_store(settings)
    processes = FleetProcesses(settings, with_beat=with_beat)
    names = [agent.name for agent in local_agents(settings, roster)]
    try:
        processes.start()
        start_agents(settings, roster, names)
        if not wait_for_worker(settings):
            raise FleetError(f"the host worker did not start; see {settings.home / 'logs'}")
        yield store, processes
    finally:
        processes.stop()
        if not keep_agents:
            stop_agents(settings, roster, names)
        store.close()
