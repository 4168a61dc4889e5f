"""Heartbeat protocol v1: ``run/<agent>.hb`` holds one line

    ts=<iso8601> pid=<pid> status=<ok|busy|waiting> card=<id or ->

written atomically (temp file + rename) every interval by the runtime itself
(the stub agent) or by a sidecar watching the pane's process; for Claude Code
and Codex the sidecar writes the status their hooks or rollout gave
(``workers.evidence``). ``waiting``: the runtime asks a person (a permission
prompt) and takes no input meanwhile. Healthy means
``now - ts <= 3 * interval``: "pane alive" alone is never health.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HEALTH_FACTOR = 3
STATUSES = ("ok", "busy", "waiting")


@dataclass(frozen=True)
class Heartbeat:
    ts: datetime
    pid: int
    status: str
    card: str | None = None

    def age(self, now: datetime | None = None) -> float:
        return ((now or utcnow()) - self.ts).total_seconds()


def utcnow() -> datetime:
    return datetime.now(UTC)


def heartbeat_path(run_dir: Path, agent: str) -> Path:
    return run_dir / f"{agent}.hb"


def format_heartbeat(hb: Heartbeat) -> str:
    return f"ts={hb.ts.isoformat()} pid={hb.pid} status={hb.status} card={hb.card or '-'}\n"


def parse_heartbeat(text: str) -> Heartbeat | None:
    """The heartbeat in ``text``, or None when it is not a v1 heartbeat line."""
    fields: dict[str, str] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if sep:
            fields[key] = value
    try:
        ts = datetime.fromisoformat(fields["ts"])
        pid = int(fields["pid"])
    except (KeyError, ValueError):
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    status = fields.get("status", "ok")
    if status not in STATUSES:
        return None
    card = fields.get("card") or None
    return Heartbeat(ts=ts, pid=pid, status=status, card=None if card == "-" else card)


def write_heartbeat(run_dir: Path, agent: str, hb: Heartbeat) -> None:
    """Atomic: a reader sees the old line or the new one, never half of one.

    The temporary file is named for the process *and* the thread: an agent that beats
    from a timer thread while its work thread reports ``busy`` (the stub does) must not
    have one thread rename the other's file away (``FileNotFoundError``, thread gone).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = heartbeat_path(run_dir, agent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(format_heartbeat(hb), encoding="utf-8")
    os.replace(tmp, path)


def beat(
    run_dir: Path, agent: str, status: str = "ok", card: str | None = None, pid: int | None = None
) -> Heartbeat:
    hb = Heartbeat(
        ts=utcnow(), pid=pid if pid is not None else os.getpid(), status=status, card=card
    )
    write_heartbeat(run_dir, agent, hb)
    return hb


def read_heartbeat(run_dir: Path, agent: str) -> Heartbeat | None:
    try:
        text = heartbeat_path(run_dir, agent).read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    return parse_heartbeat(text)


def is_healthy(hb: Heartbeat | None, interval: float, now: datetime | None = None) -> bool:
    if hb is None:
        return False
    return hb.age(now) <= HEALTH_FACTOR * interval


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"
