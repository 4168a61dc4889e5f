"""End the Codex app-server daemon an agent's Codex TUI left behind.

Codex 0.171's TUI starts a background app-server per ``CODEX_HOME`` (``codex
app-server --managed-daemon`` and its ``daemon pid-update-loop``), detached in
sessions of their own, so killing the agent's tmux session leaves them running, one
pair per agent start. ``fleet stop`` ends them: they are found by the agent's
``CODEX_HOME`` in their environment (``/proc/<pid>/environ``), the home recorded in
``run/<agent>.runtime.json`` by the last start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from workers.evidence import read_info

DAEMON_MARK = b"app-server"
TERM_WAIT = 5.0
"""Seconds a daemon gets to leave after SIGTERM (it takes ~1 s here) before SIGKILL."""


def daemon_pids(codex_home: str) -> list[int]:
    """Processes of this user running Codex's app-server with exactly this ``CODEX_HOME``."""
    wanted = b"CODEX_HOME=" + os.fsencode(codex_home)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's
            continue
        if DAEMON_MARK in cmdline and wanted in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def stop_codex_daemon(run_dir: Path, agent: str, wait: float = TERM_WAIT) -> list[int]:
    """SIGTERM the agent's Codex daemons, SIGKILL what is left after ``wait``; their pids."""
    info = read_info(run_dir, agent)
    if info is None or info.runtime != "codex" or not info.codex_home:
        return []
    pids = daemon_pids(info.codex_home)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if _alive(pid)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _alive(pid: int) -> bool:
    """Running and not a zombie (a daemon's parent is init, which reaps it soon)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
