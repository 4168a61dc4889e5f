"""``fleet up``: everything one host needs, supervised, with a summary that tells the truth.

Starts the embedded broker (unless an external one is configured), a host worker,
beat, optionally the web board and Flower, and this host's agents; restarts a
child that dies (broker first, with backoff); stops all of it on Ctrl-C, SIGTERM
or ``fleet down``: worker, beat, broker, then the agents and the fleet's tmux
server, and marks the agents ``stopped`` in the store so ``fleet ps`` says so.

The agents are the host layer's (``workers``): the caller hands in how to start
and stop them (``HostAgents``), so this module decides and never imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from fleet_queue.celery_control import wait_for_worker
from fleet_queue.composition import open_card_store
from fleet_queue.connector.config import connector_runs_here
from fleet_queue.errors import FleetError
from fleet_queue.layout import CONSOLE_TOKEN_FILE
from fleet_queue.processes import FleetProcesses
from fleet_queue.settings import Settings, mask_url
from fleet_queue.up_state import UpLock, up_log_path, write_state

if TYPE_CHECKING:
    from fleet_queue.store import CardStore


@dataclass(frozen=True)
class HostAgents:
    """This host's agent sessions: ``start`` every local one of the roster; ``stop`` every
    local one of the roster as it is now (agents added at run time too) and the tmux server."""

    start: Callable[[Settings], None]
    stop: Callable[[Settings], None]


@dataclass(frozen=True)
class UpOptions:
    with_beat: bool = True
    keep_agents: bool = False
    board_port: int | None = None
    flower_port: int | None = None


@contextmanager
def running_fleet(
    settings: Settings, agents: HostAgents, options: UpOptions = UpOptions()
) -> Iterator[tuple[CardStore, FleetProcesses]]:
    """The fleet running on this host for the duration of the block, under ``run/up.pid``."""
    lock = UpLock.acquire(settings)
    store: CardStore | None = None
    processes = FleetProcesses(
        settings,
        with_beat=options.with_beat,
        board_port=options.board_port,
        flower_port=options.flower_port,
        connector=connector_runs_here(settings),
    )
    try:
        store = open_card_store(settings)
        publish(settings, processes, "starting")
        processes.start()
        publish(settings, processes, "starting")
        agents.start(settings)
        if not wait_for_worker(settings):
            raise FleetError(f"the host worker did not start; see {settings.home / 'logs'}")
        publish(settings, processes, "running")
        yield store, processes
    finally:
        publish(settings, processes, "stopping")
        try:
            processes.stop()
            if not options.keep_agents:
                agents.stop(settings)
                if store is not None:
                    mark_agents_stopped(store, settings)
        finally:
            if store is not None:
                store.close()
            lock.release()


def mark_agents_stopped(store: CardStore, settings: Settings) -> None:
    """This host's agent rows say ``stopped``: a fleet stopped on purpose is not a lost host.

    Every local agent of the roster gets one, also one added just before the stop that
    the host worker never reported.
    """
    from fleet_queue.fleet_status import AgentStatus
    from fleet_queue.roster import load_roster

    rows = {row.agent: row for row in store.agent_statuses(host=settings.host)}
    with suppress(FleetError):  # a roster broken meanwhile: the rows already there still count
        for agent in load_roster(settings.effective_roster_path).agents_on(
            settings.host, settings.tenant
        ):
            rows.setdefault(
                agent.name,
                AgentStatus(
                    settings.tenant,
                    settings.host,
                    agent.name,
                    runtime=agent.runtime,
                    agent_class=agent.agent_class,
                ),
            )
    store.upsert_agent_statuses(
        [
            replace(
                row,
                readiness="stopped",
                health=False,
                pane_alive=False,
                pid=None,
                current_card=None,
            )
            for row in rows.values()
        ]
    )


def supervise(
    settings: Settings,
    processes: FleetProcesses,
    stopping: Callable[[float], bool],
    show: Callable[[list[str]], None],
    interval: float = 1.0,
) -> None:
    """Watch and restart until ``stopping(interval)`` is true; ``show`` after each round."""
    last: list[dict[str, Any]] = []
    while not stopping(interval):
        restarted = processes.watch()
        rows = child_rows(settings, processes)
        if rows != last or restarted:
            publish(settings, processes, "running")
            last = rows
        show(restarted)


def child_rows(settings: Settings, processes: FleetProcesses) -> list[dict[str, Any]]:
    """What the table and ``run/up.json`` show of each process, the broker first."""
    rows = []
    if not processes.owns_broker:
        rows.append(external_broker_row(settings))
    for child in processes.children:
        rows.append(
            {
                "name": child.name,
                "state": child.state,
                "pid": child.pid,
                "restarts": child.restarts,
                "url": _login_link(settings, child.url) if child.name == "board" else child.url,
                "log": str(child.log_path),
            }
        )
    return rows


def _login_link(settings: Settings, url: str | None) -> str | None:
    """The board's address with its login token, once the console has written it: the
    console prints that link only to its own log, which a ``fleet up`` user never sees."""
    try:
        token = (settings.run_dir / CONSOLE_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        return url
    return f"{url.rstrip('/')}/login?token={token}" if url and token else url


def external_broker_row(settings: Settings) -> dict[str, Any]:
    """A broker ``fleet up`` does not own: shown, pinged, never restarted."""
    from fleet_queue.broker import broker_reachable

    state = "external" if broker_reachable(settings) else "unreachable"
    return {
        "name": "broker",
        "state": state,
        "pid": None,
        "restarts": 0,
        "url": mask_url(settings.effective_broker_url),
        "log": None,
    }


def publish(settings: Settings, processes: FleetProcesses, phase: str) -> None:
    """Write ``run/up.json``: what ``fleet down``, ``up -d`` and ``doctor`` read."""
    import os

    write_state(
        settings,
        {
            "pid": os.getpid(),
            "phase": phase,
            "home": str(settings.home),
            "host": settings.host,
            "log": str(up_log_path(settings)),
            "at": time.time(),
            "children": child_rows(settings, processes),
        },
    )
