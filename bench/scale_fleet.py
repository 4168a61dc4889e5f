"""A fleet of many agents over simulated hosts, light enough for one 2-core machine.

Every host is a real host worker: its own Celery worker process (``FLEET_HOST=hN``, its
own ``FLEET_HOME`` and its own tmux server), all on one Redis and one PostgreSQL on
loopback; host 0 also runs beat. What is light is the agent in each pane: not the
Python stub (about 15 MiB and a heartbeat thread each, 15 GiB for 1,000) but ``bash``
reading lines in canonical mode, a real program on a real tty that the Deliverer
types into and verifies exactly as it does a line-reading runtime (evidence ``read``:
the program read every byte). It appends the receive time (``$EPOCHREALTIME``) and
the card id to one log. Its heartbeat (``ok``, the pane's pid) is written by one
thread of this harness, as a sidecar would write it (a Python sidecar per agent would
weigh as much as the stub). The harness closes each card itself, through the store.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from fleet_queue.composition import open_card_store
from fleet_queue.private import private_umask
from fleet_queue.processes import FleetProcesses
from fleet_queue.roster import Roster, parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.fleet import fleet_settings
from tests.support.poll import wait_until
from workers.heartbeat import beat
from workers.tmux import TmuxServer

CARD_IN_LINE = re.compile(r"fleet card done (\S+) --token")
PANE_SCRIPT = (
    'while IFS= read -r l; do case "$l" in *"card done"*)'
    ' printf "%s %s %s\\n" "$EPOCHREALTIME" "$FLEET_AGENT" "$l" >> {log};; esac; done'
)
"""The pane's program: a line reader that logs when a card's closing line arrived."""

HEARTBEAT_INTERVAL = 2.0
STATUS_INTERVAL = 5.0
"""The default ``FLEET_HOST_STATUS_INTERVAL``: a status round costs CPU per agent."""


@dataclass
class Host:
    name: str
    settings: Settings
    processes: FleetProcesses
    server: TmuxServer
    agents: list[str]
    pids: dict[str, int] = field(default_factory=dict)


def agent_name(host: int, n: int) -> str:
    return f"h{host}a{n:03d}"


def scale_roster(hosts: int, agents: int, log: Path) -> dict[str, Any]:
    """``agents`` agents spread evenly over hosts ``h0``..; two classes, like a real fleet."""
    command = f"bash --norc --noprofile -c {shlex.quote(PANE_SCRIPT.format(log=log))}"
    return {
        "version": 1,
        "preset": "minimal",
        "runtimes": {"linereader": {"command": command}},
        "agents": [
            {
                "name": agent_name(i % hosts, i // hosts),
                "runtime": "linereader",
                "class": "coder" if i % 2 else "writer",
                "host": f"h{i % hosts}",
            }
            for i in range(agents)
        ],
    }


class PaneLog:
    """Card ids and receive times the panes logged, read as the log grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.received: dict[str, float] = {}
        self.agents: dict[str, str] = {}

    def poll(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            ts, _, rest = line.partition(" ")
            agent, _, text = rest.partition(" ")
            match = CARD_IN_LINE.search(text)
            if match and match.group(1) not in self.received:
                self.received[match.group(1)] = float(ts)
                self.agents[match.group(1)] = agent


class Heartbeats:
    """One thread beats ``ok`` for every pane, with the pane's pid, as a sidecar would."""

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="heartbeats")

    def beat_all(self) -> None:
        for host in self.hosts:
            for agent, pid in host.pids.items():
                beat(host.settings.run_dir, agent, "ok", pid=pid)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):  # healthy for 3 intervals
            self.beat_all()

    def __enter__(self) -> Heartbeats:
        self.beat_all()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def open_panes(host: Host, roster: Roster) -> None:
    """Every agent's session on the host's own tmux server, through one control client."""
    from workers.runtimes import launch_plan

    host.server.ensure_started()
    ctl = host.server.control()
    try:
        for agent in host.agents:
            plan = launch_plan(host.settings, roster, roster.agent(agent))
            env = [
                arg
                for key in ("FLEET_AGENT", "FLEET_HOST")
                for arg in ("-e", f"{key}={plan.env[key]}")
            ]
            ctl.command("new-session", "-d", "-s", agent, "-x", "200", "-y", "50", *env, *plan.argv)
        for line in ctl.command("list-panes", "-a", "-F", "#{session_name}\t#{pane_pid}"):
            name, _, pid = line.partition("\t")
            if name in host.agents:
                host.pids[name] = int(pid)
    finally:
        ctl.close()


@dataclass
class ScaleFleet:
    hosts: list[Host]
    roster: Roster
    store: CardStore
    log: PaneLog

    def worker_pids(self) -> list[int]:
        pids = []
        for host in self.hosts:
            proc = host.processes.child("worker").process
            assert proc is not None
            pids.append(proc.pid)
        return pids

    def stop_workers(self) -> None:
        for host in self.hosts:
            host.processes.stop()


def _environment(broker_url: str, database_url: str) -> dict[str, str]:
    return {
        "FLEET_BROKER_URL": broker_url,
        "FLEET_DATABASE_URL": database_url,
        "FLEET_HEARTBEAT_INTERVAL": str(HEARTBEAT_INTERVAL),
        "FLEET_HOST_STATUS_INTERVAL": str(STATUS_INTERVAL),
        "FLEET_TICK_INTERVAL": "1.0",
        "FLEET_RECLAIM_INTERVAL": "5.0",
        "FLEET_LEASE_TTL": "120",
        "FLEET_NUDGE": "1",
        "FLEET_BRIEF_AT_START": "0",
    }


@contextmanager
def scale_fleet(
    root: Path, broker_url: str, database_url: str, hosts: int, agents: int
) -> Iterator[ScaleFleet]:
    """The fleet, every agent reported available; everything started is stopped after."""
    with mock.patch.dict(os.environ, _environment(broker_url, database_url)):
        yield from _scale_fleet(root, broker_url, database_url, hosts, agents)


def _scale_fleet(
    root: Path, broker_url: str, database_url: str, hosts: int, agents: int
) -> Iterator[ScaleFleet]:
    saved_umask = private_umask()
    root.mkdir(parents=True, exist_ok=True)
    log = PaneLog(root / "panes.log")
    data = scale_roster(hosts, agents, log.path)
    roster = parse_roster(data, "scale roster")
    tag = uuid.uuid4().hex[:6]
    made: list[Host] = []
    store: CardStore | None = None
    try:
        for n in range(hosts):
            settings = fleet_settings(
                root / f"h{n}", broker_url, f"fqs{tag}{n}", host=f"h{n}",
                database_url=database_url, heartbeat_interval=HEARTBEAT_INTERVAL,
                host_status_interval=STATUS_INTERVAL, lease_ttl=120.0, brief_at_start=False,
            )  # fmt: skip
            write_roster(roster, settings.effective_roster_path)
            local = [a.name for a in roster.agents if a.host == f"h{n}"]
            host = Host(
                f"h{n}", settings, FleetProcesses(settings, with_beat=n == 0, concurrency=4),
                TmuxServer.for_fleet(settings, roster), local,
            )  # fmt: skip
            made.append(host)
            open_panes(host, roster)
        store = open_card_store(made[0].settings)
        with Heartbeats(made):
            for host in made:
                host.processes.start()
            fleet = ScaleFleet(made, roster, store, log)
            wait_until(
                lambda: _available(store) >= agents,
                timeout=60 + agents * 0.1,
                interval=0.5,
                what=f"{agents} agents reported available",
            )
            yield fleet
    finally:
        for host in made:
            with contextlib.suppress(Exception):
                host.processes.stop()
            with contextlib.suppress(Exception):
                host.server.kill_server()
        if store is not None:
            store.close()
        os.umask(saved_umask)


def _available(store: CardStore) -> int:
    return sum(1 for s in store.agent_statuses() if s.readiness == "available")


def wait_received(log: PaneLog, card: str, timeout: float = 30.0) -> float:
    def arrived() -> bool:
        log.poll()
        return card in log.received

    wait_until(arrived, timeout=timeout, interval=0.002, what=f"{card} in a pane")
    return log.received[card]


def settle(seconds: float) -> None:
    time.sleep(seconds)
