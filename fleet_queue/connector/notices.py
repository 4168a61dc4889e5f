"""Fleet notices to chat rooms: which events a person hears of, and in what words.

A room with ``notices: true`` is told when a card failed or was blocked, an agent's pane
died (and was restarted) or it broke, a budget reached its warning share or was spent,
and when the fleet was paused or resumed. The connector reads these events from the
store's audit trail after a cursor kept per room (``NoticeCursors``); everything read
in one look becomes one message (``compose``), so fifty cards failing in one tick are
one notice that counts them, not fifty. A room hears at most one notice per
``NOTICE_GAP``: what happens meanwhile waits and joins the next one.

The cursor moves only after the notice was sent, so a restart loses no event; a room
without a cursor starts at the newest event (the history before is not replayed). Before
a notice is sent, the newest event it tells of is kept as the room's ``pending`` one: a
send that failed (or a crash mid-send) is tried again with the same events and the same
``notice_id``, which the network uses to drop a repeat where it can (Matrix, Slack,
Discord; not Telegram), so the one notice in flight at a crash is not posted twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from fleet_queue.cards import Event, EventKind
from fleet_queue.connector.cursor import load_cursor, save_cursor

NOTICE_KINDS: tuple[EventKind, ...] = (
    EventKind.FAILED,
    EventKind.BLOCKED,
    EventKind.RESTARTED,
    EventKind.BROKEN,
    EventKind.BUDGET_WARNING,
    EventKind.OVER_BUDGET,
    EventKind.PAUSED,
    EventKind.RESUMED,
)
"""The events a notice room hears of; every other event (claims, renewals, done) is not news."""
NOTICE_EVERY = 1.0
"""Seconds between two looks at the audit trail."""
NOTICE_GAP = 5.0
"""Seconds a room waits after one notice before the next: a burst becomes one message."""
NOTICE_BATCH = 500
"""Events read per look at most; more are told in the next notice."""
SHOWN_EACH = 3
"""Events of one kind told one line each; more of that kind are one line that counts them."""
NAMED = 5
"""Cards or agents named in a counting line before "and N more"."""
DETAIL_CHARS = 200
"""A detail (a failure's reason) is cut here: a notice line stays one readable line."""


def _detail(event: Event) -> str:
    text = " ".join((event.detail or "").split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def _by(event: Event) -> str:
    return f" ({event.agent})" if event.agent else ""


def _reason(event: Event) -> str:
    detail = _detail(event)
    return f": {detail}" if detail else ""


def _card(word: str) -> Callable[[Event], str]:
    return lambda e: f"card {e.card_id} {word}{_by(e)}{_reason(e)}"


def _pause(e: Event) -> str:
    who = f" by {e.agent}" if e.agent else ""
    return f"fleet paused{who}{_reason(e)}: no card is dispatched until it is resumed"


def _restart(e: Event) -> str:
    # supervision's detail: "pane was dead; restart n of …", or "restart n failed: why"
    failed = (e.detail or "").startswith("restart ") and " failed:" in (e.detail or "")
    done = "its restart failed" if failed else "restarted"
    return f"agent {e.agent}'s pane died, {done}{_reason(e)}"


LINES: dict[EventKind, Callable[[Event], str]] = {
    EventKind.FAILED: _card("failed"),
    EventKind.BLOCKED: _card("blocked"),
    EventKind.RESTARTED: _restart,
    EventKind.BROKEN: lambda e: f"agent {e.agent} is broken{_reason(e)}",
    EventKind.BUDGET_WARNING: lambda e: f"budget warning: {_detail(e)}",
    EventKind.OVER_BUDGET: lambda e: f"budget spent: {_detail(e)} (no new cards to its agents)",
    EventKind.PAUSED: _pause,
    EventKind.RESUMED: lambda e: f"fleet resumed{f' by {e.agent}' if e.agent else ''}",
}
"""The one line each kind of event becomes."""

COUNTED: dict[EventKind, str] = {
    EventKind.FAILED: "cards failed",
    EventKind.BLOCKED: "cards blocked",
    EventKind.RESTARTED: "agent restarts after a dead pane",
    EventKind.BROKEN: "agents broken",
    EventKind.BUDGET_WARNING: "budget warnings",
    EventKind.OVER_BUDGET: "budgets spent",
    EventKind.PAUSED: "fleet pauses",
    EventKind.RESUMED: "fleet resumes",
}


def notice_line(event: Event) -> str | None:
    """The line ``event`` becomes; None for an event no room hears of."""
    line = LINES.get(event.kind)
    return None if line is None else line(event)


def _subject(event: Event) -> str:
    if event.card_id:
        return event.card_id
    if event.agent:
        return event.agent
    return _detail(event).split(":", 1)[0]


def _counted(kind: EventKind, events: Sequence[Event]) -> str:
    """One line for many events of one kind: how many, the first few named, the latest."""
    subjects: dict[str, int] = {}
    for event in events:
        subject = _subject(event)
        subjects[subject] = subjects.get(subject, 0) + 1
    named = [f"{s} (x{n})" if n > 1 else s for s, n in list(subjects.items())[:NAMED]]
    more = len(subjects) - len(named)
    listed = ", ".join(named) + (f" and {more} more" if more > 0 else "")
    latest = notice_line(events[-1])
    return f"{len(events)} {COUNTED[kind]}: {listed}; the latest: {latest}"


def compose(events: Sequence[Event]) -> str | None:
    """The notice for ``events`` (oldest first), one line per kind's event or one counting
    line per kind with more than ``SHOWN_EACH``; kinds in the order they first happened.
    None when no event is news."""
    groups: dict[EventKind, list[Event]] = {}
    for event in events:
        if event.kind in LINES:
            groups.setdefault(event.kind, []).append(event)
    lines: list[str] = []
    for kind, group in groups.items():
        if len(group) > SHOWN_EACH:
            lines.append(_counted(kind, group))
        else:
            lines += [LINES[kind](e) for e in group]
    return "\n".join(f"fleet: {line}" for line in lines) or None


def due(last_sent: float | None, now: float, gap: float = NOTICE_GAP) -> bool:
    """Whether a room may hear a notice now (its last one was ``gap`` seconds ago or more)."""
    return last_sent is None or now - last_sent >= gap


def notice_id(room: str, last: Event) -> str:
    """The id of the notice to ``room`` whose newest event is ``last``: the same on every
    try, another room's or another store's (the event's time) differs. 20 hex characters:
    it fits Discord's 25-character nonce with a part number."""
    key = f"{room}\n{last.id}\n{last.at.isoformat()}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


def _ids(found: object) -> dict[str, int]:
    if not isinstance(found, dict):
        return {}
    return {str(room): last for room, last in found.items() if isinstance(last, int)}


class NoticeCursors:
    """The last event id each notice room was told of, and the newest event of the
    notice in flight to it (``pending``), in ``path`` (JSON, 0600).

    A missing or unreadable file is no cursor: each room starts at the newest event.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        data = load_cursor(path)
        self.rooms, self.pending = _ids(data.get("rooms")), _ids(data.get("pending"))

    def get(self, room: str) -> int | None:
        return self.rooms.get(room)

    def in_flight(self, room: str) -> int | None:
        """The newest event of the notice to ``room`` not known to be sent: the next
        notice tells exactly up to it again."""
        return self.pending.get(room)

    def hold(self, room: str, last_id: int) -> None:
        """Keep ``last_id`` as ``room``'s notice in flight, written before it is sent."""
        self.pending[room] = last_id
        self._save()

    def set(self, room: str, last_id: int) -> None:
        """Move ``room``'s cursor to ``last_id`` (nothing in flight now) and write the
        file before returning."""
        self.rooms[room] = last_id
        self.pending.pop(room, None)
        self._save()

    def _save(self) -> None:
        save_cursor(self.path, {"rooms": self.rooms, "pending": self.pending})


def cursor_path(run_dir: Path, network: str) -> Path:
    return run_dir / "chat" / f"notices-{network}.json"
