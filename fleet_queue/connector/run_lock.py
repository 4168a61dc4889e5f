"""One chat connector per ``FLEET_HOME``: two would both read the room and answer twice.

``fleet connector run`` (by hand, under ``fleet up`` or under systemd) holds
``run/connector.pid`` with a lock the kernel drops when the process ends, so a crash
leaves no stale claim and ``fleet doctor`` sees a connector started by hand too.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from fleet_queue.errors import ConflictError
from fleet_queue.settings import Settings
from fleet_queue.up_state import pid_lock_holder, take_pid_lock

TAKE_WAIT = 5.0
"""Seconds a starting connector waits for the lock: a connector killed a moment ago may
not have exited yet (a restart by ``fleet up`` or systemd, or a test's kill and start)."""


def connector_pid_path(settings: Settings) -> Path:
    return settings.run_dir / "connector.pid"


def running_connector(settings: Settings) -> int | None:
    """The pid of the connector serving this home, or None when none runs."""
    return pid_lock_holder(connector_pid_path(settings))


@contextlib.contextmanager
def connector_lock(settings: Settings, wait: float = TAKE_WAIT) -> Iterator[None]:
    """Hold this home's connector lock, or refuse in one line naming the running one."""
    path = connector_pid_path(settings)
    deadline = time.monotonic() + wait
    fd = take_pid_lock(settings, path)
    while fd is None and time.monotonic() < deadline:
        time.sleep(0.1)
        fd = take_pid_lock(settings, path)
    if fd is None:
        raise ConflictError(
            f"a chat connector already runs for {settings.home} (pid {running_connector(settings)})"
        )
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
