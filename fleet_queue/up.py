"""``fleet up``: everything one host needs, in the foreground, with a live summary.

Starts the embedded broker (unless an external one is configured), the
roster's agent sessions on this host, a host worker and beat; restarts a child
that dies; stops all of it cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from fleet_queue.errors import FleetError
from fleet_queue.processes import FleetProcesses, wait_for_worker
from fleet_queue.roster import load_roster
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.store import CardStore


@contextmanager
def running_fleet(
    settings: Settings, with_beat: bool = True, keep_agents: bool = False
) -> Iterator[tuple[CardStore, FleetProcesses]]:
    """The fleet running on this host for the duration of the block."""
    from fleet_queue.store import CardStore
    from workers.sessions import local_agents, start_agents, stop_agents

    roster = load_roster(settings.effective_roster_path)
    store = CardStore.from_settings(settings)
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


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, handlers restored afterwards."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
