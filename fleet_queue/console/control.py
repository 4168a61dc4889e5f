"""Take control: who is typing raw keystrokes into which agent's pane, right now.

Off unless ``FLEET_CONSOLE_TAKE_CONTROL`` is set. A session belongs to one operator and
one agent; while it lasts nobody else may take that agent. It ends when the operator
gives control back, closes the page, or types nothing for ``IDLE_LIMIT`` seconds (the
next look at the sessions ends it). Start and end are the audit's business
(``routes_control``); this module only keeps the sessions, in the console's memory: a
restarted console has none.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from fleet_queue.errors import ConflictError

IDLE_LIMIT = 600.0
"""Seconds without a keystroke after which a session is ended for its operator."""


@dataclass
class ControlSession:
    id: str
    agent: str
    actor: str
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    keys: int = 0
    """Characters sent so far (a pasted line counts each character)."""

    def summary(self, now: float) -> str:
        return f"session {self.id}, {self.keys} keystrokes in {now - self.started:.0f} s"


@dataclass
class Controls:
    """The open sessions of one console, thread-safe (actions run in worker threads)."""

    sessions: dict[str, ControlSession] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, agent: str, actor: str) -> ControlSession:
        """A new session, or ConflictError naming who holds the agent."""
        with self.lock:
            held = next((s for s in self.sessions.values() if s.agent == agent), None)
            if held is not None:
                raise ConflictError(
                    f"{held.actor} has control of agent {agent} ({held.summary(time.monotonic())})"
                )
            session = ControlSession(secrets.token_hex(8), agent, actor)
            self.sessions[session.id] = session
            return session

    def use(self, session_id: str, agent: str, actor: str, keys: int) -> ControlSession:
        """The caller's own live session for ``agent``, counting ``keys`` more keystrokes."""
        with self.lock:
            session = self.sessions.get(session_id)
            if session is None or session.agent != agent or session.actor != actor:
                raise ConflictError(f"no control session {session_id!r} of yours for {agent}")
            session.keys += keys
            session.last = time.monotonic()
            return session

    def close(self, session_id: str, agent: str, actor: str) -> ControlSession:
        session = self.use(session_id, agent, actor, 0)
        with self.lock:
            self.sessions.pop(session.id, None)
        return session

    def idle(self, now: float) -> list[ControlSession]:
        """Remove and return the sessions nobody typed in for ``IDLE_LIMIT`` seconds."""
        with self.lock:
            gone = [s for s in self.sessions.values() if now - s.last > IDLE_LIMIT]
            for session in gone:
                del self.sessions[session.id]
        return gone
