"""Private state: every directory fleet-queue creates is 0700 and every file 0600.

``FLEET_HOME`` holds every card, result and fencing token (``fleet.db``), the roster,
heartbeats, logs and the embedded broker's data; ``fleet.env`` holds the database and
broker passwords. Any other local user who can read them can read the work and, with a
token, close someone else's card. Two layers keep them private:

- ``private_umask()`` at each entry point (the ``fleet`` command, the Celery app module
  that ``celery worker|beat`` import, the stub agent), so whatever a process or a child
  (SQLite's ``-wal``/``-shm``, redis-server's AOF, tmux) creates is private too;
- ``ensure_private_dir`` / ``write_private`` on each create, so the mode holds even in a
  process that did not go through an entry point (a script using the Python API).

What is refused and what is warned (see docs/security.md):

- ``fleet.env`` readable or writable by group or others: **refused** — settings are not
  loaded and the command stops with one line naming ``chmod 600``;
- ``FLEET_HOME`` accessible by group or others: **warned** (one line on stderr at start-up,
  a failed ``fleet doctor`` check); the operator chose that directory, so it is not changed;
- the tmux socket directory: **refused** by the host layer (``workers.tmux``).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_umask() -> int:
    """Make everything this process (and its children) creates private; returns the old mask."""
    return os.umask(PRIVATE_UMASK)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) at 0700, or tighten it to 0700 if we own it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(DIR_MODE)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``path`` atomically at 0600: a temporary file beside it, then a rename.

    The temporary file is created 0600 (``O_EXCL``), so the content is never readable by
    others, not even for the instant between write and rename.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, FILE_MODE)  # O_CREAT's mode is masked by the umask; never wider
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_to_others(path: Path) -> int:
    """The group/other permission bits of ``path`` (0 when private or missing)."""
    try:
        return stat.S_IMODE(path.stat().st_mode) & 0o077
    except OSError:
        return 0


def mode_problem(path: Path, what: str) -> str | None:
    """One line saying ``path`` is open to group or others, with the fix; None when private."""
    bits = open_to_others(path)
    if not bits:
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    fix = "chmod 700" if path.is_dir() else "chmod 600"
    return f"{what} {path} is accessible by group or others (mode {mode:04o}): {fix} {path}"


def state_modes(home: Path) -> tuple[list[str], list[str], list[str]]:
    """``fleet doctor``'s view of the state: (modes seen, refused problems, warned problems).

    Refused: ``fleet.env`` and the tmux socket directory open to others (the fleet will not
    run with them). Warned: ``FLEET_HOME`` and anything else fleet-queue keeps under it.
    """
    refused_paths = {home / "fleet.env", home / "run" / f"tmux-{os.getuid()}"}
    candidates = [
        home,
        home / "fleet.env",
        home / "roster.yaml",
        home / "fleet.db",
        home / "fleet.db-wal",
        home / "fleet.db-shm",
        home / "run",
        home / "run" / f"tmux-{os.getuid()}",
        home / "redis",
        home / "logs",
    ]
    seen: list[str] = []
    refused: list[str] = []
    warned: list[str] = []
    for path in candidates:
        if not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        seen.append(f"{path.name or path} {mode:04o}")
        problem = mode_problem(path, "FLEET_HOME" if path == home else "state")
        if problem:
            (refused if path in refused_paths else warned).append(problem)
    return seen, refused, warned


def warn_open_home(home: Path) -> None:
    """Start-up warning (one line on stderr) for a ``FLEET_HOME`` others can read."""
    problem = mode_problem(home, "FLEET_HOME") if home.is_dir() else None  # a file: settings say
    if problem:
        print(f"fleet: warning: {problem}", file=sys.stderr, flush=True)
