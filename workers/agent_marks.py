"""What this host remembers of each local agent between status rounds.

One small JSON file per agent, ``run/agents/<name>.json`` (0600), written by the host
worker's supervision and by ``fleet start|stop`` on the same host:

- the restart breaker: when the worker restarted the agent lately, when it may next, and
  why it stopped trying (``broken``);
- ``stopped``: an operator stopped the agent (``fleet stop``), so supervision leaves it down;
- ``brief_pending``: a new pane that is owed its brief before any card.

A file, not the store: the breaker must work while the store is down, and ``fleet start``
resets it on the host that runs the agent. The sessions lock (``sessions_lock``) keeps the
worker and an operator's ``fleet start|stop`` from starting the same session twice.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fleet_queue.private import ensure_private_dir, write_private


@dataclass
class AgentMarks:
    restarts: list[float] = field(default_factory=list)
    """Epoch seconds of the supervision's restarts still inside the restart window."""
    next_restart: float = 0.0
    """No restart before this epoch second (the backoff)."""
    broken: str | None = None
    """Why supervision gave up on the agent; None while it still restarts it."""
    stopped: bool = False
    brief_pending: bool = False
    brief_failures: int = 0


def marks_dir(run_dir: Path) -> Path:
    return run_dir / "agents"


def marks_path(run_dir: Path, agent: str) -> Path:
    return marks_dir(run_dir) / f"{agent}.json"


def load_marks(run_dir: Path, agent: str) -> AgentMarks:
    """The agent's marks; none (a fresh start) when the file is missing or unreadable."""
    try:
        data = json.loads(marks_path(run_dir, agent).read_text(encoding="utf-8"))
        known = {k: v for k, v in data.items() if k in AgentMarks.__dataclass_fields__}
        return AgentMarks(**known)
    except (OSError, ValueError, TypeError, AttributeError):
        return AgentMarks()


def save_marks(run_dir: Path, agent: str, marks: AgentMarks) -> None:
    write_private(marks_path(run_dir, agent), json.dumps(asdict(marks)) + "\n")


def on_session_start(run_dir: Path, agent: str, *, reset: bool, brief: bool) -> None:
    """A session was started or respawned: owe it a brief; an operator's start (``reset``)
    also clears the breaker and the stop."""
    marks = AgentMarks() if reset else load_marks(run_dir, agent)
    marks.brief_pending = brief
    marks.brief_failures = 0
    save_marks(run_dir, agent, marks)


def on_operator_start(run_dir: Path, agent: str) -> None:
    """``fleet start`` of a live agent: the breaker and the stop go, a brief still owed stays."""
    marks = load_marks(run_dir, agent)
    save_marks(run_dir, agent, AgentMarks(brief_pending=marks.brief_pending))


def mark_stopped(run_dir: Path, agent: str) -> None:
    marks = load_marks(run_dir, agent)
    marks.stopped = True
    marks.brief_pending = False
    save_marks(run_dir, agent, marks)


@contextmanager
def sessions_lock(run_dir: Path) -> Iterator[None]:
    """One starter or stopper of this host's sessions at a time (worker or operator)."""
    path = ensure_private_dir(marks_dir(run_dir)) / ".sessions.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
