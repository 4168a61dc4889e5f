"""One fleet host as an operator runs it: FLEET_HOME, `fleet start`, `fleet worker`, `fleet beat`.

Every process is a real subprocess started through ``wrap`` — inside a network +
UTS namespace for the multi-host test, or as is for a single-machine test — with
the host's own ``FLEET_*`` environment, exactly what a systemd unit would set.
What the agents received is read back from the stub agents' own logs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_queue.roster import parse_roster, write_roster
from tests.support.netns import Namespace
from tests.support.timing import scaled
from workers.stub_agent import log_path, read_stub_log, received_messages

Wrap = Callable[[Sequence[str]], list[str]]
FLEET = [sys.executable, "-m", "fleet_queue"]
STOP_TIMEOUT = 15.0

FAST = {
    "FLEET_HEARTBEAT_INTERVAL": "0.5",
    "FLEET_TICK_INTERVAL": "1",
    "FLEET_RECLAIM_INTERVAL": "1",
    "FLEET_HOST_STATUS_INTERVAL": "0.5",
}
LEASE_TTL = 5.0
"""Seconds on a quiet machine; ``lease_ttl()`` scales it by the measured slowness."""


def lease_ttl() -> float:
    """The hosts' lease, long enough for a worker on this machine, as loaded as it is now."""
    return scaled(LEASE_TTL)


NOISE = (
    "Sending due task",
    "fleet.request_host_status[",
    "fleet.collect_host_status[",
    "fleet.supervisor_tick[",
    "fleet.reclaim_expired[",
)
"""Log lines of the periodic tasks: left out of a failure report unless they say more."""
SIGNAL = ("'claimed': ['", "'reclaimed': ['", "ERROR", "WARNING", "Traceback")


def _interesting(line: str) -> bool:
    return any(s in line for s in SIGNAL) or not any(n in line for n in NOISE)


def stub_agents(agents: Sequence[tuple[str, str, str]], work: float = 0.2) -> list[dict[str, Any]]:
    """Roster entries ``(name, class, host)`` for stub agents that work ``work`` seconds."""
    return [
        {"name": name, "runtime": "stub", "class": cls, "host": host,
         "env": {"FLEET_STUB_WORK": str(work)}}
        for name, cls, host in agents
    ]  # fmt: skip


def card_marker(card_id: str) -> str:
    return f"fleet card done {card_id} --token"


@dataclass
class FleetHost:
    """The processes and files of one host (one tenant) of the fleet."""

    name: str
    tenant: str
    home: Path
    env: dict[str, str]
    wrap: Wrap
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def create(
        cls, name: str, home: Path, *, tenant: str = "default", broker_url: str,
        database_url: str, socket: str, wrap: Wrap | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> FleetHost:  # fmt: skip
        """A host whose processes see only these FLEET_* settings (plus the fast test timers).

        The broker URL carries a password, so it also goes into ``home/fleet.env``
        (0600): a pane never gets it in its environment, yet the agent's
        ``fleet card done`` reads it from there, as in production.
        """
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
        env.update(FAST)
        env["FLEET_LEASE_TTL"] = str(lease_ttl())
        env.update({
            "FLEET_HOME": str(home), "FLEET_HOST": name, "FLEET_TENANT": tenant,
            "FLEET_BROKER_URL": broker_url, "FLEET_DATABASE_URL": database_url,
            "FLEET_TMUX_SOCKET": socket, "PYTHONUNBUFFERED": "1",
        })  # fmt: skip
        env.update(extra_env or {})
        secrets_file = home / "fleet.env"
        secrets_file.write_text(f"FLEET_BROKER_URL={broker_url}\n", encoding="utf-8")
        secrets_file.chmod(0o600)
        return cls(name, tenant, home, env, wrap or list)

    @staticmethod
    def in_namespace(space: Namespace, hostname: str) -> Wrap:
        """Run commands inside ``space`` with the kernel hostname ``hostname``."""
        return lambda command: space.argv(command, hostname=hostname)

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def write_roster(self, data: dict[str, Any]) -> None:
        write_roster(parse_roster(data, f"roster of {self.name}"), self.home / "roster.yaml")

    def fleet(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        """``fleet ARGS`` on this host; a non-zero exit is an error with its output."""
        proc = subprocess.run(
            self.wrap([*FLEET, *args]), env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(
                f"{self.name}: fleet {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def start_agents(self) -> list[dict[str, Any]]:
        """``fleet start``: this host's roster agents, and only those."""
        out = self.fleet("start", "--json").stdout
        started: list[dict[str, Any]] = json.loads(out)
        return started

    def spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        """A long-running ``fleet <args>`` whose output goes to ``home/logs/<role>.log``."""
        log = self.home / "logs" / f"{role}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.wrap([*FLEET, *args]), env=self.env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.procs[role] = proc
        return proc

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self.spawn("worker", "worker", "--concurrency", "2")

    def start_beat(self) -> subprocess.Popen[bytes]:
        return self.spawn("beat", "beat")

    def signal_process(self, role: str, sig: signal.Signals) -> None:
        proc = self.procs[role]
        assert proc.poll() is None, f"{self.name}'s {role} already exited ({proc.returncode})"
        os.kill(proc.pid, sig)

    def kill(self, role: str) -> None:
        """``kill -9`` of the process itself (the wrappers exec, so the pid is its own)."""
        proc = self.procs[role]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)

    def stop(self, *, agents: bool = True) -> None:
        """Stop our processes (TERM, then KILL), then the agents and the tmux server."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if agents:
            subprocess.run(
                self.wrap([*FLEET, "stop"]), env=self.env, capture_output=True, timeout=60,
                check=False,
            )  # fmt: skip

    def messages(self, agent: str) -> list[str]:
        """What the stub agent received, byte-exact, from its own log on this host."""
        return received_messages(log_path(self.run_dir, agent))

    def commands(self, agent: str) -> list[dict[str, Any]]:
        """The ``fleet card done/fail`` commands the stub ran, with their exit codes."""
        records = read_stub_log(log_path(self.run_dir, agent))
        return [r for r in records if r.get("kind") == "command"]

    def agents_with(self, card_id: str, agents: Sequence[str]) -> list[str]:
        """Which of ``agents`` (on this host) received the card's text."""
        marker = card_marker(card_id)
        return [a for a in agents if any(marker in m for m in self.messages(a))]

    def logs(self, tail: int = 6000) -> str:
        """The worker and beat logs without the periodic chatter, and the stub logs."""
        parts = []
        for path in sorted((self.home / "logs").glob("*.log")):
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            text = "\n".join(line for line in lines if _interesting(line))
            parts.append(f"--- {self.name}/{self.tenant} {path.name}\n{text[-tail:]}")
        for path in sorted(self.run_dir.glob("*.stub.jsonl")):
            text = path.read_text(encoding="utf-8", errors="replace")
            parts.append(f"--- {self.name}/{self.tenant} {path.name}\n{text[-1500:]}")
        return "\n".join(parts)


def all_logs(hosts: Sequence[FleetHost]) -> str:
    return "\n".join(host.logs() for host in hosts)
