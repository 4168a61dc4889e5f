"""The fleet's processes on one host: broker, host worker, beat — started, watched, stopped.

``fleet worker`` and ``fleet beat`` are the conventional Celery commands with
our queue and node names filled in; ``fleet up`` runs them as children,
restarts a child that dies (the broker first, each with its own backoff), and
stops them worker first, broker last. Every child gets a session of its own,
so a Ctrl-C at the terminal reaches ``fleet up`` alone, which then stops them
in that order (a broker that got the signal first left the worker tracebacks).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from fleet_queue.broker import (
    broker_reachable,
    embedded_broker_command,
    redis_client,
    wait_for_broker,
)
from fleet_queue.errors import FleetError
from fleet_queue.queues import control_queue, host_queue, node_name, redis_key
from fleet_queue.serving import refuse_open_bind
from fleet_queue.settings import Settings

CELERY = [sys.executable, "-m", "celery", "-A", "fleet_queue.celery_app"]
STOP_TIMEOUT = 15.0
BACKOFF_FIRST = 0.5
"""Seconds before the first restart of a child that died; doubled per quick death."""
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
"""A child that ran this long before dying starts its backoff afresh."""
BEAT_REFUSED = 3
"""beat's exit status when another beat of the tenant holds the lock (celery_app)."""
STOP_ORDER = ("connector", "worker", "beat", "flower", "board", "broker")
"""The worker finishes the delivery in hand while the broker still answers; the broker last."""

ChildState = Literal["running", "restarting", "stopped"]


def worker_command(settings: Settings, concurrency: int = 4, loglevel: str = "INFO") -> list[str]:
    """A host worker: this host's queue plus the tenant's control queue.

    Threads, not prefork: deliveries reuse one tmux control-mode client per
    process, and the work is I/O bound.
    """
    queues = f"{host_queue(settings.tenant, settings.host)},{control_queue(settings.tenant)}"
    return [
        sys.executable, "-m", "fleet_queue.worker_main",  # `celery worker` less its CLI's imports
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
    # flower_launch: celery's command line with /metrics behind the login too
    launch = [sys.executable, "-m", "fleet_queue.flower_launch", *CELERY[3:]]
    cmd = [*launch, "flower", f"--port={port}", f"--address={address}"]
    # the login goes by FLOWER_BASIC_AUTH (credentials.flower_environment), never argv
    return cmd


def connector_command() -> list[str]:
    """The chat connector (``fleet connector run``, docs/chat.md) when the roster has one."""
    return [sys.executable, "-m", "fleet_queue", "connector", "run"]


def board_command(port: int) -> list[str]:
    """The web board on loopback (``fleet board --serve``): its own process, like Flower."""
    return [sys.executable, "-m", "fleet_queue", "board", "--serve", "--port", str(port)]


def child_env(settings: Settings) -> dict[str, str]:
    """The children see the same settings as this process, whatever came from options."""
    env = dict(os.environ)
    env["FLEET_HOME"] = str(settings.home)
    env["FLEET_HOST"] = settings.host
    env["FLEET_TENANT"] = settings.tenant
    env["FLEET_TMUX_SOCKET"] = settings.tmux_socket
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, looked up in the parent: the child between fork and exec only calls it."""
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        return cast(Callable[..., int], ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):
        return None


PRCTL = _prctl()
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when ``fleet up`` dies, even by SIGKILL.

    The children have sessions of their own, so nothing else would end them: a killed
    ``up`` would leave a worker, beat and broker running with nobody watching.
    """
    if PRCTL is not None:
        PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process: its command, log, and what ``fleet up`` shows of it."""

    name: str
    command: list[str]
    log_path: Path
    ready: Callable[[subprocess.Popen[bytes]], None] | None = None
    """Waits until the started process serves (the broker answers); raises ``FleetError``."""
    extra_env: dict[str, str] = field(default_factory=dict)
    url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    quick_deaths: int = 0
    started_at: float = 0.0
    retry_at: float | None = None
    last_exit: int | None = None
    stopped: bool = False

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env={**env, **self.extra_env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.started_at = time.monotonic()
        self.retry_at = None
        self.stopped = False
        if self.ready is not None:
            self.ready(self.process)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.alive and self.process is not None else None

    @property
    def state(self) -> ChildState:
        if self.stopped or self.process is None:
            return "stopped"
        return "running" if self.alive else "restarting"

    def note_death(self, now: float) -> bool:
        """Schedule the restart of a child that died, with backoff; True when it died now."""
        if self.stopped or self.process is None or self.alive or self.retry_at is not None:
            return False
        self.last_exit = self.process.returncode
        ran = now - self.started_at
        self.quick_deaths = 1 if ran >= STABLE_AFTER else self.quick_deaths + 1
        delay = min(BACKOFF_FIRST * 2 ** (self.quick_deaths - 1), BACKOFF_MAX)
        self.retry_at = now + delay
        return True

    def due(self, now: float) -> bool:
        return not self.stopped and self.retry_at is not None and now >= self.retry_at

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM and wait (Celery finishes the task in hand); SIGKILL the group after
        ``timeout``, and anything the child left in its session."""
        self.stopped = True
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class FleetProcesses:
    """Broker + host worker + beat (+ board, Flower) for one host; ``watch`` restarts the dead."""

    settings: Settings
    with_beat: bool = True
    concurrency: int = 4
    board_port: int | None = None
    flower_port: int | None = None
    connector: bool = False
    children: list[Child] = field(default_factory=list)

    def start(self) -> None:
        """Start every child, the broker first; stop those started when one cannot start."""
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.children = self._plan()
        env = child_env(self.settings)
        try:
            for child in self.children:
                child.start(env)
        except BaseException:
            self.stop()
            raise

    def _plan(self) -> list[Child]:
        settings = self.settings
        logs = settings.home / "logs"
        children = []
        if settings.broker_is_embedded and not broker_reachable(settings):
            children.append(
                Child(
                    "broker",
                    embedded_broker_command(settings),
                    logs / "broker.log",
                    ready=lambda process: wait_for_broker(settings, process),
                )
            )
        children.append(
            Child("worker", worker_command(settings, self.concurrency), logs / "worker.log")
        )
        if self.with_beat:
            children.append(Child("beat", beat_command(settings), logs / "beat.log"))
        if self.connector:
            children.append(Child("connector", connector_command(), logs / "connector.log"))
        if self.board_port is not None:
            url = f"http://127.0.0.1:{self.board_port}/"
            children.append(
                Child("board", board_command(self.board_port), logs / "board.log", url=url)
            )
        if self.flower_port is not None:
            from fleet_queue.credentials import flower_environment

            children.append(
                Child(
                    "flower",
                    flower_command(settings, self.flower_port),
                    logs / "flower.log",
                    extra_env=flower_environment(settings),
                    url=f"http://127.0.0.1:{self.flower_port}/",
                )
            )
        return children

    @property
    def owns_broker(self) -> bool:
        return any(child.name == "broker" for child in self.children)

    def watch(self) -> list[str]:
        """Restart the children that died, each after its backoff, the broker before the
        rest (a worker started without its broker only waits for it); the names restarted."""
        now = time.monotonic()
        for child in self.children:
            if child.note_death(now) and child.name == "beat":
                self._release_beat_lock(child)
        restarted = []
        env = child_env(self.settings)
        for child in self.children:
            if not child.due(now):
                continue
            try:
                child.start(env)
            except FleetError:
                child.note_death(time.monotonic())
            child.restarts += 1
            restarted.append(child.name)
            if child.name == "broker" and not child.alive:
                break
        return restarted

    def _release_beat_lock(self, beat: Child) -> None:
        """Our beat died holding the fleet's beat lock: free it so its restart is not refused
        for the lock's lifetime. Not when it exited because another beat holds it."""
        if beat.last_exit == BEAT_REFUSED:
            return
        with contextlib.suppress(Exception):
            redis_client(self.settings, timeout=1.0, fail_fast=True).delete(
                redis_key(self.settings.tenant, "beat")
            )

    def stop(self) -> None:
        """Worker first, then beat, the web UIs, and the broker last."""
        for name in STOP_ORDER:
            for child in self.children:
                if child.name == name:
                    child.stop()
                    if name == "beat":
                        self._release_beat_lock(child)

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)
