"""Whether one delivery was accepted, from evidence that names that delivery.

Every delivery carries a nonce in its source label (``[from <source> #<nonce>]``),
so an identical text sent twice is two deliveries that cannot be mistaken for
each other. What counts as evidence depends on how the pane's program reads:

- a line reader (canonical mode): the program's processes read at least the
  delivered bytes since the typing began (``/proc/<pid>/io`` ``rchar``) and no
  complete line is left unread in the terminal; the kernel's echo is not evidence
  (the terminal draws the line whether or not anyone reads it);
- a raw-mode program (a TUI): the runtime's own record of the prompt when its
  adapter supplies one (``PromptEvidence``), else this delivery's marker on the
  screen or in the pane's recent history, nothing of the message left as a draft
  just before the cursor, and the program read at least the delivered bytes.

A screen diff alone is never evidence. A delivery whose verify failed is
remembered in ``run/<agent>.delivery.json`` so a retry of the same text first
looks for the earlier copy instead of typing a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from workers.heartbeat import utcnow
from workers.runtimes import LaunchPlan

TAIL_CHARS = 16
MIN_DRAFT_CHARS = 8
PENDING_SECONDS = 600.0
"""How long a retry of the same text looks for an unconfirmed earlier copy."""
_WS = re.compile(r"\s+")

PromptEvidence = Callable[[LaunchPlan, str, datetime], bool | None]
"""``(plan, sha256 of the typed message, typing began) -> True`` when the runtime itself
recorded the prompt (a hook, a transcript or rollout entry); None when it cannot tell."""


def new_nonce() -> str:
    return secrets.token_hex(4)


def marker(nonce: str) -> str:
    return f"#{nonce}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    screen: tuple[str, ...]
    cursor_x: int
    cursor_y: int
    history: tuple[str, ...] = ()
    """Rows scrolled off above the screen, oldest first (only searched for markers)."""

    def shows(self, mark: str) -> bool:
        rows = (*self.history, *self.screen)
        return any(mark in row for row in rows) or mark in "".join(r.strip() for r in rows)


def is_draft(
    snap: Snapshot, message: str, width: int, markers: list[re.Pattern[str]] | None = None
) -> bool:
    """True while the text just left of the cursor is the message's own text (typed
    but not submitted, or still being echoed), or a paste placeholder is there."""
    before_cursor = cursor_text(snap, width)
    if any(m.search(before_cursor) for m in markers or ()):
        return True
    flat_message = _WS.sub("", message)
    window = min(MIN_DRAFT_CHARS, len(flat_message))
    recent = _WS.sub("", before_cursor)[-window:]
    return len(recent) == window and recent in flat_message


def cursor_text(snap: Snapshot, width: int) -> str:
    """The cursor row left of the cursor, with the full-width rows it wrapped from."""
    if not snap.screen:
        return ""
    y = min(max(snap.cursor_y, 0), len(snap.screen) - 1)
    parts = [snap.screen[y][: snap.cursor_x]]
    reach = TAIL_CHARS // max(width, 1) + 1
    while y > 0 and reach > 0 and len(snap.screen[y - 1]) >= width:
        y -= 1
        reach -= 1
        parts.insert(0, snap.screen[y])
    return "".join(parts)


def history_rows(message: str, width: int) -> int:
    """Rows of history to search for the marker: the message's own rows and a margin."""
    rows = sum(len(line) // max(width, 1) + 1 for line in message.split("\n"))
    return rows + 20


@dataclass(frozen=True)
class Pending:
    """A typed delivery whose verify did not confirm it."""

    nonce: str
    sha256: str
    source: str
    at: float
    taken: bool = False
    """The program had read all of its bytes when verify gave up: it may yet accept it."""

    @classmethod
    def load(cls, run_dir: Path, agent: str) -> Pending | None:
        try:
            data = json.loads(_pending_path(run_dir, agent).read_text(encoding="utf-8"))
            return cls(
                str(data["nonce"]),
                str(data["sha256"]),
                str(data["source"]),
                float(data["at"]),
                bool(data.get("taken", False)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def matches(self, sha256: str, source: str) -> bool:
        age = utcnow().timestamp() - float(self.at)
        return self.sha256 == sha256 and self.source == source and 0 <= age < PENDING_SECONDS

    def save(self, run_dir: Path, agent: str) -> None:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = _pending_path(run_dir, agent)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(self), fh)
        os.replace(tmp, path)


def clear_pending(run_dir: Path, agent: str) -> None:
    with contextlib.suppress(OSError):
        _pending_path(run_dir, agent).unlink()


def _pending_path(run_dir: Path, agent: str) -> Path:
    return run_dir / f"{agent}.delivery.json"
