"""Who did what: the actor of an operator's action, and the event that records it.

Every operator action — a message typed into a pane, block, unblock, link, a forced
reclaim, pause and resume, adding or removing an agent — leaves an ``operator``
event, ``detail`` = ``by <actor>: <what>``, the form the web console writes too.
The actor is the agent itself when the command runs in an agent's pane (its
``FLEET_AGENT``), else ``user@host`` as the operating system knows them. A message
is recorded by its SHA-256 and length, never its text: the trail says what was
typed and can prove it, without holding what may be private.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
from typing import TYPE_CHECKING

from fleet_queue.cards import EventKind

if TYPE_CHECKING:
    from fleet_queue.store import CardStore


def actor() -> str:
    """``FLEET_AGENT`` in an agent's pane; otherwise ``user@host`` from the OS."""
    agent = os.environ.get("FLEET_AGENT", "").strip()
    if agent:
        return agent
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def text_digest(text: str) -> str:
    """``sha256=<hex> length=<characters>`` of a message, for the trail instead of the text."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"sha256={digest} length={len(text)}"


def record(
    store: CardStore,
    what: str,
    *,
    by: str | None = None,
    card: str | None = None,
    agent: str | None = None,
) -> None:
    """Append the ``operator`` event ``by <actor>: <what>`` (the caller's actor by default)."""
    store.record_event(card, EventKind.OPERATOR, agent=agent, detail=f"by {by or actor()}: {what}")
