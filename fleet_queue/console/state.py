"""What every console route reads: the ``Console`` (settings, store, login, panes) and the
templates. Apart from ``app`` so the routes and the app that mounts them import one lower
module, not each other."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.templating import Jinja2Templates

from fleet_queue.board import board_roster
from fleet_queue.console.control import Controls
from fleet_queue.console.security import SESSION_COOKIE, Guard
from fleet_queue.console.terminal import Terminal
from fleet_queue.errors import FleetError
from fleet_queue.layout import CONSOLE_TOKEN_FILE

if TYPE_CHECKING:
    from fleet_queue.roster import Roster
    from fleet_queue.settings import Settings
    from fleet_queue.store import CardStore

HERE = Path(__file__).parent
XTERM = HERE / "static" / "node_modules" / "@xterm" / "xterm"
"""Where ``scripts/console.sh`` installs xterm.js (``npm ci`` of ``static/package.json``)."""
TOKEN_FILE = CONSOLE_TOKEN_FILE

TerminalFactory = Callable[["Settings", "Roster"], Terminal]


@dataclass
class Console:
    """What every route reads: settings, the store, the login, this host's panes."""

    settings: Settings
    store: CardStore
    guard: Guard
    limit: int
    interval: float
    """Seconds between two looks at the store for the live panels."""
    terminal: Terminal | None = None
    controls: Controls = field(default_factory=Controls)
    """Open take-control sessions (``FLEET_CONSOLE_TAKE_CONTROL``)."""

    @property
    def read_only(self) -> bool:
        return self.guard.read_only

    def roster(self) -> Roster | None:
        """Read at each use: ``fleet roster`` edits show without a restart."""
        return board_roster(self.settings)

    def local_agents(self) -> set[str]:
        if self.terminal is None:
            return set()
        try:
            return set(self.terminal.local_agents())
        except FleetError:
            return set()


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def actor_of(request: Request) -> str:
    actor: str = request.scope["state"]["actor"]
    return actor


templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["session_cookie"] = SESSION_COOKIE
"""A page offers "log out" only to a browser holding the session cookie (not to basic auth)."""
