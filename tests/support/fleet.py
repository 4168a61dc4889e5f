"""A real fleet for end-to-end tests: stub agents in tmux, a Celery worker and beat
in subprocesses, a real Redis; deliveries are counted from the stub agents' own logs."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_queue.celery_control import wait_for_worker
from fleet_queue.composition import open_card_store
from fleet_queue.private import private_umask
from fleet_queue.processes import FleetProcesses
from fleet_queue.roster import Roster, parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.poll import wait_until
from tests.support.timing import scaled


def stub_roster(
    agents: list[tuple[str, str]],
    env: dict[str, str] | None = None,
    per_agent_env: dict[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    per_agent_env = per_agent_env or {}
    return {
        "version": 1,
        "preset": "minimal",
        "agents": [
            {
                "name": name,
                "runtime": "stub",
                "class": cls,
                "env": {**(env or {}), **per_agent_env.get(name, {})},
            }
            for name, cls in agents
        ],
    }


@dataclass
class Fleet:
    settings: Settings
    roster: Roster
    store: CardStore
    processes: FleetProcesses
    extra: dict[str, Any] = field(default_factory=dict)

    def messages(self, agent: str) -> list[str]:
        """What the stub agent received, read from its own byte-exact log."""
        from workers.stub_agent import log_path, received_messages

        return received_messages(log_path(self.settings.run_dir, agent))

    def deliveries_of(self, card_id: str) -> int:
        """How many times the card's text reached any pane (from the stubs' logs)."""
        marker = f"fleet card done {card_id} --token"
        return sum(
            1 for agent in self.roster.names() for msg in self.messages(agent) if marker in msg
        )

    def agent_of(self, card_id: str) -> list[str]:
        marker = f"fleet card done {card_id} --token"
        return [a for a in self.roster.names() if any(marker in m for m in self.messages(a))]

    def status(self, card_id: str) -> str:
        return str(self.store.get(card_id).status)

    def wait_status(self, card_id: str, status: str, timeout: float = 30.0) -> None:
        wait_until(
            lambda: self.status(card_id) == status,
            timeout=timeout,
            what=f"{card_id} to be {status} (is {self.status(card_id)})",
        )

    def kill_worker(self) -> None:
        proc = self.processes.child("worker").process
        assert proc is not None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart_worker(self) -> None:
        """What ``fleet up`` does for a dead child: watch until its backoff has passed and
        it is started again (one ``watch()`` right after the death only schedules it)."""

        def answering() -> bool:
            self.processes.watch()
            return wait_for_worker(self.settings, timeout=0.5)

        wait_until(answering, timeout=scaled(30), interval=0.1, what="the worker restarted")


def fleet_settings(home: Path, broker_url: str | None, socket: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "broker_url": broker_url,
        "tmux_socket": socket,
        "host": "testhost",
        "heartbeat_interval": 0.5,
        "tick_interval": 1.0,
        "reclaim_interval": 1.0,
        "host_status_interval": 0.5,
        "lease_ttl": 30.0,
        "max_attempts": 3,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_fleet(
    settings: Settings, roster_data: dict[str, Any], *, with_beat: bool = True
) -> Iterator[Fleet]:
    from workers.sessions import start_agents, stop_agents

    roster = parse_roster(roster_data, "test roster")
    write_roster(roster, settings.effective_roster_path)
    # The children read settings from the environment, like a real deployment.
    env_overrides = {
        "FLEET_HEARTBEAT_INTERVAL": str(settings.heartbeat_interval),
        "FLEET_TICK_INTERVAL": str(settings.tick_interval),
        "FLEET_RECLAIM_INTERVAL": str(settings.reclaim_interval),
        "FLEET_HOST_STATUS_INTERVAL": str(settings.host_status_interval),
        "FLEET_LEASE_TTL": str(settings.lease_ttl),
        "FLEET_CARD_TIMEOUT": str(settings.card_timeout),
        "FLEET_MAX_ATTEMPTS": str(settings.max_attempts),
        "FLEET_NUDGE": "1" if settings.nudge else "0",
    }
    if settings.broker_url:
        env_overrides["FLEET_BROKER_URL"] = settings.broker_url
    if settings.database_url:
        env_overrides["FLEET_DATABASE_URL"] = settings.database_url
    saved = {key: os.environ.get(key) for key in env_overrides}
    os.environ.update(env_overrides)
    # the state is made as `fleet up` makes it (its umask), whatever ran in this process before
    saved_umask = private_umask()
    store = open_card_store(settings)
    processes = FleetProcesses(settings, with_beat=with_beat, concurrency=4)
    try:
        processes.start()
        start_agents(settings, roster, roster.names())
        assert wait_for_worker(settings, timeout=scaled(60)), _logs(settings)
        fleet = Fleet(settings=settings, roster=roster, store=store, processes=processes)
        wait_until(
            lambda: (
                len([s for s in store.agent_statuses() if s.readiness == "available"])
                == len(roster.agents)
            ),
            timeout=scaled(30),
            what="every stub agent to be reported available",
        )
        yield fleet
    finally:
        processes.stop()
        stop_agents(settings, roster, roster.names())
        from workers.tmux import TmuxServer

        with contextlib.suppress(Exception):
            TmuxServer.for_fleet(settings, roster).kill_server()
        store.close()
        os.umask(saved_umask)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _logs(settings: Settings) -> str:
    logs = settings.home / "logs"
    parts = []
    for path in sorted(logs.glob("*.log")):
        parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
    return "\n".join(parts)
