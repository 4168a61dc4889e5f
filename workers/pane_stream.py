"""The console's hands on this host's panes (``fleet_queue.console.terminal.Terminal``).

Looking: ``capture-pane -p -e -N`` (cells with their colours, trailing blanks kept) and
the pane's size and cursor, both through one persistent ``tmux -C`` client, so a look
costs two commands on an open pipe and no fork. Nothing here attaches a sized client to
an agent's session (the control client sits on the holder session), so the agent's
window is never resized by a viewer.

Typing: the same :class:`~workers.delivery.Deliverer` as cards (busy refusal, sanitizing,
whole-or-nothing, verify). Keys: only those in ``KEYS``. Stop and restart: the session
functions of ``fleet stop|restart``.
"""

from __future__ import annotations

import threading

from fleet_queue.console.terminal import KEYS, PaneFrame
from fleet_queue.errors import HostError, UsageError
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from workers.delivery import Deliverer
from workers.tmux import ControlClient, TmuxServer, pane_target

RESET = "\x1b[0m"
"""Ends every captured row: ``-e`` leaves a background colour open at the line's end."""

RAW_CHUNK = 256
"""Bytes per ``send-keys -H`` command: a paste stays well inside one control-mode line."""

_GEOMETRY = "#{pane_width}\t#{pane_height}\t#{cursor_x}\t#{cursor_y}\t#{cursor_flag}\t#{pane_dead}"


class TmuxTerminal:
    """One per console process; thread-safe (the control client serialises commands)."""

    def __init__(self, settings: Settings, roster: Roster) -> None:
        self.settings = settings
        self.roster = roster
        self.server = TmuxServer.for_fleet(settings, roster)
        self.control: ControlClient = self.server.control()
        self._deliverer: Deliverer | None = None
        self._lock = threading.Lock()

    def local_agents(self) -> list[str]:
        return [a.name for a in self.roster.agents_on(self.settings.host, self.settings.tenant)]

    def frame(self, agent: str) -> PaneFrame | None:
        self._local(agent)
        target = pane_target(agent)
        try:
            geometry = self.control.command("display-message", "-p", "-t", target, _GEOMETRY)
            rows = self.control.command("capture-pane", "-p", "-e", "-N", "-t", target)
        except HostError:
            return None  # no server, no session: no pane to show
        width, height, cx, cy, cursor, dead = (geometry[0] if geometry else "").split("\t")
        lines = tuple(row + RESET for row in rows[: int(height or 0)])
        return PaneFrame(
            lines=lines,
            width=int(width or 80),
            height=int(height or 24),
            cursor_x=int(cx or 0),
            cursor_y=int(cy or 0),
            cursor_visible=cursor == "1",
            dead=dead == "1",
        )

    def say(self, agent: str, text: str, source: str) -> str:
        receipt = self._delivery().deliver(agent, text, source=source)
        how = "verified" if receipt.verified else "typed, not verified"
        return f"{how} in {receipt.ms:.0f} ms ({receipt.method})"

    def press(self, agent: str, key: str) -> None:
        self._local(agent)
        if key not in KEYS.values():
            raise UsageError(f"no key {key!r} (one of: {', '.join(KEYS.values())})")
        self.control.command("send-keys", "-t", pane_target(agent), key)

    def type_raw(self, agent: str, data: str) -> None:
        """The bytes of ``data`` in hex (``send-keys -H``): control keys and escape sequences
        arrive as typed, and nothing in them is read as a tmux key name."""
        self._local(agent)
        raw = data.encode("utf-8")
        for start in range(0, len(raw), RAW_CHUNK):
            chunk = [f"{b:02x}" for b in raw[start : start + RAW_CHUNK]]
            self.control.command("send-keys", "-t", pane_target(agent), "-H", *chunk)

    def stop(self, agent: str) -> str:
        from workers.sessions import stop_agents

        self._local(agent)
        return ", ".join(
            f"{r.agent} {r.action}" for r in stop_agents(self.settings, self.roster, [agent])
        )

    def restart(self, agent: str) -> str:
        from workers.sessions import restart_agents

        self._local(agent)
        results = restart_agents(self.settings, self.roster, [agent])
        return ", ".join(f"{r.agent} {r.action}" for r in results)

    def close(self) -> None:
        self.control.close()
        with self._lock:
            if self._deliverer is not None:
                self._deliverer.close()

    def _delivery(self) -> Deliverer:
        with self._lock:
            if self._deliverer is None:
                self._deliverer = Deliverer(self.settings, self.roster)
            return self._deliverer

    def _local(self, agent: str) -> None:
        """Only this host's roster agents: a name from a URL reaches no other session."""
        if agent not in self.local_agents():
            raise UsageError(f"no agent {agent!r} on host {self.settings.host}")
