"""``fleet up -d`` and ``fleet down``: a supervisor in the background, and its end.

``up -d`` starts ``fleet up`` as a daemon (its own session, stdin closed, output to
``logs/up.log``) and returns once that supervisor says its fleet runs, or with the
last line it logged when it could not start. ``down`` sends the running ``up`` (detached
or in a terminal) SIGTERM, which stops worker, beat, broker, agents and tmux server in
that order; then it makes sure of it: no ``up``, no process of its children, no agent,
no tmux server. Anything still there is one line and a non-zero exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet_queue.errors import ConflictError, FleetError, HostError
from fleet_queue.private import FILE_MODE, ensure_private_dir
from fleet_queue.processes import child_env
from fleet_queue.settings import Settings
from fleet_queue.up import HostAgents, mark_agents_stopped
from fleet_queue.up_state import pid_path, read_state, running_up, state_path, up_log_path

START_TIMEOUT = 120.0
DOWN_TIMEOUT = 90.0
"""Long enough for the worker's warm shutdown (15 s at most), beat, broker and the agents."""


def start_detached(
    settings: Settings, up_args: list[str], timeout: float = START_TIMEOUT
) -> dict[str, Any]:
    """Start ``fleet up UP_ARGS`` as a daemon; its state once it runs."""
    pid = running_up(settings)
    if pid is not None:
        raise ConflictError(f"fleet up already runs for {settings.home} (pid {pid})")
    log = up_log_path(settings)
    ensure_private_dir(log.parent)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleet_queue", "up", *up_args],
            env=child_env(settings),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.home,
        )
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    while True:
        state = read_state(settings)
        if state is not None and state.get("phase") == "running":
            return state
        if process.poll() is not None:
            raise FleetError(f"fleet up -d stopped at start: {last_line(log)} (see {log})")
        if time.monotonic() > deadline:
            raise FleetError(f"fleet up -d did not report running within {timeout:.0f}s; see {log}")
        time.sleep(0.1)


def last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no output"


@dataclass
class DownReport:
    up_pid: int | None = None
    stopped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"up_pid": self.up_pid, "stopped": self.stopped}


def bring_down(settings: Settings, agents: HostAgents, timeout: float = DOWN_TIMEOUT) -> DownReport:
    """Stop the running ``up`` and everything it started; ``HostError`` naming what is left."""
    report = DownReport(up_pid=running_up(settings))
    children = []
    if report.up_pid is not None:
        state = read_state(settings) or {}
        children = [row for row in state.get("children", []) if row.get("pid")]
        _stop_up(settings, report.up_pid, timeout)
        report.stopped.append(f"fleet up (pid {report.up_pid})")
    else:  # a killed `up` leaves its files (its lock died with it): they mean nothing now
        pid_path(settings).unlink(missing_ok=True)
        state_path(settings).unlink(missing_ok=True)
    left = [f"{row['name']} (pid {row['pid']})" for row in children if owned(row["pid"], settings)]
    if left:
        raise HostError(f"still running after fleet up stopped: {', '.join(left)}")
    # an `up --keep-agents`, or agents started by hand: the fleet is down when they are
    agents.stop(settings)
    from fleet_queue.composition import open_card_store

    store = open_card_store(settings)
    try:
        mark_agents_stopped(store, settings)
    finally:
        store.close()
    return report


def _stop_up(settings: Settings, pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while running_up(settings) is not None:
        if time.monotonic() > deadline:
            raise HostError(
                f"fleet up (pid {pid}) did not stop within {timeout:.0f}s;"
                f" see {up_log_path(settings)}"
            )
        time.sleep(0.1)


def owned(pid: int, settings: Settings) -> bool:
    """True when ``pid`` is alive and one of this home's processes (its environment or
    command line names ``FLEET_HOME``): a pid the system reused for another is not ours."""
    home = str(settings.home).encode()
    for name in ("environ", "cmdline"):
        try:
            if home in Path(f"/proc/{pid}/{name}").read_bytes():
                return True
        except OSError:
            return False
    return False
