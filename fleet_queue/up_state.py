"""Whether ``fleet up`` runs for a ``FLEET_HOME``, and what it last said of its children.

``run/up.pid`` (0600) names the supervising process and is held under an exclusive
``flock`` for that process's whole life: the kernel drops the lock when the process
dies, however it dies, so a pid file left by a killed ``up`` never reads as running
(and a reused pid never fools ``fleet down``). ``run/up.json`` (0600) is the
supervisor's last word on its children — state, pid, restarts, URLs, logs — for
``fleet up -d``, ``fleet down`` and ``fleet doctor``. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet_queue.errors import ConflictError
from fleet_queue.private import FILE_MODE, ensure_private_dir, write_private
from fleet_queue.settings import Settings

PID_FILE = "up.pid"
STATE_FILE = "up.json"


def pid_path(settings: Settings) -> Path:
    return settings.run_dir / PID_FILE


def state_path(settings: Settings) -> Path:
    return settings.run_dir / STATE_FILE


def up_log_path(settings: Settings) -> Path:
    """Where a detached ``fleet up`` writes what it does."""
    return settings.home / "logs" / "up.log"


@dataclass
class UpLock:
    """The running ``fleet up``'s claim on its home; ``release`` removes its files."""

    settings: Settings
    fd: int

    @classmethod
    def acquire(cls, settings: Settings) -> UpLock:
        """Take the home for this process, or refuse in one line naming the running ``up``."""
        fd = take_pid_lock(settings, pid_path(settings))
        if fd is None:
            pid = running_up(settings)
            raise ConflictError(
                f"fleet up already runs for {settings.home} (pid {pid}); `fleet down` stops it"
            )
        return cls(settings, fd)

    def release(self) -> None:
        state_path(self.settings).unlink(missing_ok=True)
        pid_path(self.settings).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def take_pid_lock(settings: Settings, path: Path) -> int | None:
    """Hold ``path`` (a 0600 pid file in the run dir) for this process while the returned
    descriptor stays open; None when another process holds it. The kernel drops the lock
    when the holder dies, so a crash leaves no stale claim."""
    ensure_private_dir(settings.run_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.fchmod(fd, FILE_MODE)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def running_up(settings: Settings) -> int | None:
    """The pid of the ``fleet up`` that holds this home, or None when none does."""
    return pid_lock_holder(pid_path(settings))


def pid_lock_holder(path: Path) -> int | None:
    """The pid in a pid file whose lock is held (-1 if unreadable), None when none holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        return None
    finally:
        os.close(fd)


def write_state(settings: Settings, state: dict[str, Any]) -> None:
    write_private(state_path(settings), json.dumps(state, indent=1, sort_keys=True) + "\n")


def read_state(settings: Settings) -> dict[str, Any] | None:
    """The running ``up``'s last state, or None when no ``up`` runs (or it wrote none yet)."""
    if running_up(settings) is None:
        return None
    try:
        data = json.loads(state_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
