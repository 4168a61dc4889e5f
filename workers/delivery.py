"""Type a message into an agent's pane, literally, and check it was accepted.

The message is ``[from <source>] <text>``: the source label is prefixed to the
first line so a one-line text stays one line. The text is sanitized first
(``fleet_queue.sanitize.sanitize_text``: control bytes other than newline and
tab removed, CR/CRLF to LF). One short line goes by ``send-keys -l``; several
lines or a long text by ``set-buffer`` + ``paste-buffer -p -d`` (bracketed
paste, so a multi-line text is one message), then ``Enter``. Every tmux command
goes through one persistent control-mode client and its answer is checked.

Verify (a bounded poll of the pane, never of the agent's own logs): the message
is ACCEPTED when the screen changed since before the send and the text just
left of the cursor is no longer the message's own text (nor a runtime's paste
placeholder such as claude's ``[Pasted text #1]``). Message text still before
the cursor is a draft (or an echo still in progress); no change at all is
unverifiable. Both fail closed after the timeout.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from fleet_queue.errors import AgentBusyError, DeliveryError, HostError, RosterError
from fleet_queue.roster import Roster
from fleet_queue.sanitize import sanitize_text
from fleet_queue.settings import Settings
from workers.heartbeat import is_healthy, read_heartbeat, utcnow
from workers.probe import BUSY_WINDOW
from workers.runtimes import LaunchPlan, launch_plan
from workers.tmux import ControlClient, TmuxServer, pane_target

SEND_KEYS_MAX = 512
"""Longer one-line texts are pasted: one buffer write instead of a key stream."""
VERIFY_TIMEOUT = 5.0
VERIFY_POLL_MAX = 0.01
"""Longest pause between two looks at the pane while verifying: an agent that takes the
text in 12 ms is seen at ~15 ms, not at 35 ms (one look is three control-mode commands)."""
TAIL_CHARS = 16
MIN_DRAFT_CHARS = 8
_WS = re.compile(r"\s+")
_buffer_ids = itertools.count(1)


@dataclass(frozen=True)
class DeliveryReceipt:
    agent: str
    host: str
    source: str
    text: str
    """Exactly what was typed: the source label and the sanitized text."""
    method: str
    """send-keys | paste"""
    verified: bool | None
    """True: accepted; None: not asked to verify."""
    elapsed_ms: float
    verify_ms: float | None = None
    delivered_at: datetime = field(default_factory=utcnow)

    @property
    def ms(self) -> float:
        """Total milliseconds: typing plus verification."""
        return self.elapsed_ms + (self.verify_ms or 0.0)

    def as_dict(self) -> dict[str, object]:
        return {
            "agent": self.agent,
            "host": self.host,
            "source": self.source,
            "chars": len(self.text),
            "method": self.method,
            "verified": self.verified,
            "elapsed_ms": round(self.elapsed_ms, 3),
            "verify_ms": None if self.verify_ms is None else round(self.verify_ms, 3),
            "delivered_at": self.delivered_at.isoformat(),
        }


@dataclass(frozen=True)
class PaneState:
    dead: bool
    in_mode: bool
    activity: int
    width: int


def label(source: str) -> str:
    """The one-line source label; the label itself is sanitized and kept to one line."""
    clean = _WS.sub(" ", sanitize_text(source)).strip()
    if not clean:
        raise DeliveryError("empty source label")
    return f"[from {clean}] "


def compose(source: str, text: str) -> str:
    body = sanitize_text(text)
    if not body.strip():
        raise DeliveryError("empty message")
    return label(source) + body


class Deliverer:
    """Long-lived: one per host worker or CLI call; owns one ``tmux -C`` client."""

    def __init__(
        self,
        settings: Settings,
        roster: Roster,
        *,
        verify_timeout: float = VERIFY_TIMEOUT,
        busy_window: float = BUSY_WINDOW,
        trust_native_idle: bool = False,
    ) -> None:
        self.settings = settings
        self.roster = roster
        self.verify_timeout = verify_timeout
        self.busy_window = busy_window
        self.trust_native_idle = trust_native_idle
        self.server = TmuxServer.for_fleet(settings, roster)
        self.control: ControlClient = self.server.control()
        self._plans: dict[str, LaunchPlan] = {}
        self._pane_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def close(self) -> None:
        self.control.close()

    def deliver(
        self, agent: str, text: str, *, source: str, verify: bool = True, force: bool = False
    ) -> DeliveryReceipt:
        """Type ``text`` into ``agent``'s pane; ``DeliveryError`` (one line) on any failure."""
        message = compose(source, text)
        plan = self._plan(agent)
        with self._pane_lock(agent):
            try:
                return self._deliver(plan, message, source, verify, force)
            except DeliveryError:
                raise
            except HostError as exc:
                raise DeliveryError(f"agent {agent!r}: {exc.message}") from None

    def _deliver(
        self, plan: LaunchPlan, message: str, source: str, verify: bool, force: bool
    ) -> DeliveryReceipt:
        started = time.perf_counter()
        target = pane_target(plan.agent)
        state = self._pane_state(plan.agent)
        if state.dead:
            raise DeliveryError(f"agent {plan.agent!r}: pane is dead (run `fleet start`)")
        if not force:
            self._refuse_busy(plan, state)
        if state.in_mode:
            self.control.command("send-keys", "-X", "-t", target, "cancel")
        before = self._stable_snapshot(target) if verify else None
        method = self._type(plan, target, message)
        elapsed = (time.perf_counter() - started) * 1000
        verified: bool | None = None
        verify_ms: float | None = None
        if verify:
            verify_started = time.perf_counter()
            self._verify(plan, target, message, before, state.width)
            verified = True
            verify_ms = (time.perf_counter() - verify_started) * 1000
        return DeliveryReceipt(
            agent=plan.agent,
            host=self.settings.host,
            source=source,
            text=message,
            method=method,
            verified=verified,
            elapsed_ms=elapsed,
            verify_ms=verify_ms,
        )

    def _pane_lock(self, agent: str) -> threading.Lock:
        """One delivery at a time per pane; panes of different agents are typed into at once.

        A host-wide lock made every delivery wait for the one before it to be verified, and
        verify waits for the agent to redraw. The control client serialises single commands.
        """
        with self._locks_lock:
            return self._pane_locks.setdefault(agent, threading.Lock())

    def _plan(self, agent: str) -> LaunchPlan:
        if agent not in self._plans:
            try:
                spec = self.roster.agent(agent)
            except RosterError:
                raise DeliveryError(f"unknown agent {agent!r} (not in the roster)") from None
            if spec.host_or(self.settings.host) != self.settings.host:
                raise DeliveryError(
                    f"agent {agent!r} runs on host {spec.host!r}, not {self.settings.host!r}"
                )
            self._plans[agent] = launch_plan(self.settings, self.roster, spec)
        return self._plans[agent]

    def _pane_state(self, agent: str) -> PaneState:
        try:
            line = self.control.command(
                "display-message",
                "-p",
                "-t",
                pane_target(agent),
                "#{pane_dead}\t#{pane_in_mode}\t#{window_activity}\t#{pane_width}",
            )
        except HostError as exc:
            if "can't find" in exc.message:
                raise DeliveryError(
                    f"agent {agent!r}: no tmux session (run `fleet start`)"
                ) from None
            raise
        dead, in_mode, activity, width = (line[0] if line else "").split("\t")
        return PaneState(dead == "1", in_mode == "1", int(activity or 0), int(width or 80))

    def _refuse_busy(self, plan: LaunchPlan, state: PaneState) -> None:
        agent = plan.agent
        hb = read_heartbeat(self.settings.run_dir, agent)
        healthy = hb is not None and is_healthy(hb, self.settings.heartbeat_interval)
        if hb is not None and healthy and hb.status == "busy":
            raise AgentBusyError(
                f"agent {agent!r} is busy (heartbeat busy, card {hb.card or '-'}); use --force"
            )
        if self.trust_native_idle and plan.native_heartbeat and healthy:
            # The runtime itself writes heartbeat v1 and says "ok": it is waiting for
            # input. Only a sidecar's "ok" (process alive) needs the pane to go quiet too.
            return
        idle = time.time() - state.activity
        if idle < self.busy_window:
            raise AgentBusyError(
                f"agent {agent!r} is busy (pane output changed {max(idle, 0):.1f}s ago);"
                " use --force"
            )

    def _type(self, plan: LaunchPlan, target: str, message: str) -> str:
        ctl = self.control
        if "\n" not in message and len(message) <= SEND_KEYS_MAX:
            ctl.command("send-keys", "-l", "-t", target, "--", message)
            ctl.command("send-keys", "-t", target, "Enter")
            return "send-keys"
        buffer = f"fleet-{os.getpid()}-{next(_buffer_ids)}"
        ctl.command("set-buffer", "-b", buffer, "--", message)
        try:
            ctl.command("paste-buffer", "-p", "-d", "-b", buffer, "-t", target)
        except HostError:
            self._drop_buffer(buffer)
            raise
        if plan.submit_delay:
            time.sleep(plan.submit_delay)
        ctl.command("send-keys", "-t", target, "Enter")
        return "paste"

    def _drop_buffer(self, buffer: str) -> None:
        with contextlib.suppress(HostError):
            self.control.command("delete-buffer", "-b", buffer)

    def _snapshot(self, target: str) -> Snapshot | None:
        """Screen and cursor, or None when the cursor moved while the screen was read."""
        first = self._cursor(target)
        screen = self.control.command("capture-pane", "-p", "-t", target)
        if self._cursor(target) != first:
            return None
        return Snapshot(tuple(screen), first[0], first[1])

    def _stable_snapshot(self, target: str) -> Snapshot | None:
        for _ in range(5):
            snap = self._snapshot(target)
            if snap is not None:
                return snap
        return None

    def _cursor(self, target: str) -> tuple[int, int]:
        line = self.control.command(
            "display-message", "-p", "-t", target, "#{cursor_x}\t#{cursor_y}"
        )
        x, _, y = (line[0] if line else "0\t0").partition("\t")
        return int(x or 0), int(y or 0)

    def _verify(
        self, plan: LaunchPlan, target: str, message: str, before: Snapshot | None, width: int
    ) -> None:
        markers = [re.compile(m) for m in plan.draft_markers]
        deadline = time.monotonic() + self.verify_timeout
        pause = 0.001  # then 2, 4, 8, 10 ms: most agents take the text within a few ms
        drafted = False
        while True:
            after = self._snapshot(target)
            if after is not None and after != before:
                drafted = is_draft(after, message, width, markers)
                if not drafted:
                    return
            if time.monotonic() >= deadline:
                why = "still a draft in the input line" if drafted else "no pane change after send"
                raise DeliveryError(
                    f"agent {plan.agent!r}: delivery not accepted within {self.verify_timeout}s"
                    f" ({why})"
                )
            time.sleep(pause)
            pause = min(pause * 2, VERIFY_POLL_MAX)


@dataclass(frozen=True)
class Snapshot:
    screen: tuple[str, ...]
    cursor_x: int
    cursor_y: int


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
