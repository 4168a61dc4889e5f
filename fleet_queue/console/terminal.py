"""What the console needs of this host's agent panes, as an interface.

``fleet_queue`` decides and ``workers`` acts: the console never imports tmux code. The
CLI's board command composes a :class:`Terminal` from ``workers.pane_stream`` and hands it
to the app; without one (no roster, no tmux) the terminal view and the agent actions say
so and the rest of the console works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

KEYS = {"escape": "Escape", "ctrl-c": "C-c"}
"""The keys the console may press in a pane (name in the URL: tmux key)."""


@dataclass(frozen=True)
class PaneFrame:
    """One look at a pane: its cells as text with SGR escapes, one line per row."""

    lines: tuple[str, ...]
    width: int
    height: int
    cursor_x: int
    cursor_y: int
    cursor_visible: bool
    dead: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "lines": list(self.lines),
            "width": self.width,
            "height": self.height,
            "cursor_x": self.cursor_x,
            "cursor_y": self.cursor_y,
            "cursor_visible": self.cursor_visible,
            "dead": self.dead,
        }


class Terminal(Protocol):
    """This host's agent panes: look at them, type into them, stop and restart them.

    Every method may block (tmux calls); the console runs them in a worker thread. A
    failure is a :class:`~fleet_queue.errors.FleetError` with one line for the operator.
    """

    def local_agents(self) -> list[str]:
        """The roster agents whose panes live on this host."""
        ...

    def frame(self, agent: str) -> PaneFrame | None:
        """The pane as it is now; None when the agent has no pane here."""
        ...

    def say(self, agent: str, text: str, source: str) -> str:
        """Type ``text`` through the verified delivery path; what was proved, one line."""
        ...

    def press(self, agent: str, key: str) -> None:
        """Press one of :data:`KEYS` (by its tmux name) in the agent's pane."""
        ...

    def type_raw(self, agent: str, data: str) -> None:
        """Send keystrokes as they are (take-control mode): no busy check, no verification."""
        ...

    def stop(self, agent: str) -> str: ...

    def restart(self, agent: str) -> str: ...

    def close(self) -> None: ...
