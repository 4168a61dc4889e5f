"""The fleet's processes on one host: broker, host worker, beat — started, watched, stopped.

``fleet worker`` and ``fleet beat`` are the conventional Celery commands with
our queue and node names filled in; ``fleet up`` runs them as children,
restarts a child that dies, and stops everything on SIGINT/SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fleet_queue.broker import EmbeddedBroker, start_embedded_broker
from fleet_queue.queues import control_queue, host_queue, node_name
from fleet_queue.serving import refuse_open_bind
from fleet_queue.settings import Settings

CELERY = [sys.executable, "-m", "celery", "-A", "fleet_queue.celery_app"]
STOP_TIMEOUT = 15.0


def worker_command(settings: Settings, concurrency: int = 4, loglevel: str = "INFO") -> list[str]:
    """A host worker: this host's queue plus the tenant's control queue.

    Threads, not prefork: deliveries reuse one tmux control-mode client per
    process, and the work is I/O bound.
    """
    queues = f"{host_queue(settings.tenant, settings.host)},{control_queue(settings.tenant)}"
    return [
        *CELERY, "worker",
        "-Q", queues,
        "-n", node_name(settings.tenant, settings.host),
        "--pool", "threads",
        "--concurrency", str(concurrency),
        "--without-gossip", "--without-mingle",
        "-E",
        "--loglevel", loglevel,
    ]  # fmt: skip


def beat_command(settings: Settings, loglevel: str = "INFO") -> list[str]:
    schedule = settings.run_dir / f"celerybeat-{settings.tenant}"
    return [*CELERY, "beat", "-s", str(schedule), "--loglevel", loglevel]


def flower_command(settings: Settings, port: int = 5555, address: str = "127.0.0.1") -> list[str]:
    """Flower shows task arguments and can revoke tasks: without auth, loopback only."""
    refuse_open_bind("Flower", address, settings.flower_auth, "FLEET_FLOWER_AUTH")
    cmd = [*CELERY, "flower", f"--port={port}", f"--address={address}"]
    # the login goes by FLOWER_BASIC_AUTH (credentials.flower_environment), never argv
    return cmd


def child_env(settings: Settings) -> dict[str, str]:
    """The children see the same settings as this process, whatever came from options."""
    env = dict(os.environ)
    env["FLEET_HOME"] = str(settings.home)
    env["FLEET_HOST"] = settings.host
    env["FLEET_TENANT"] = settings.tenant
    env["FLEET_TMUX_SOCKET"] = settings.tmux_socket
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass
class Child:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class FleetProcesses:
    """Broker + host worker + beat for one host; ``watch`` restarts the dead."""

    settings: Settings
    with_beat: bool = True
    concurrency: int = 4
    broker: EmbeddedBroker | None = None
    children: list[Child] = field(default_factory=list)

    def start(self) -> None:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.broker_is_embedded:
            self.broker = start_embedded_broker(self.settings)
        logs = self.settings.home / "logs"
        self.children = [
            Child("worker", worker_command(self.settings, self.concurrency), logs / "worker.log")
        ]
        if self.with_beat:
            self.children.append(Child("beat", beat_command(self.settings), logs / "beat.log"))
        env = child_env(self.settings)
        for child in self.children:
            child.start(env)

    def watch(self) -> list[str]:
        """Restart children that died; the names restarted."""
        restarted = []
        env = child_env(self.settings)
        for child in self.children:
            if not child.alive:
                child.restarts += 1
                child.start(env)
                restarted.append(child.name)
        return restarted

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)
