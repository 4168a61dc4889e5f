"""Type a message into an agent's pane, whole or not at all, and prove it was accepted.

The message is ``[from <source> #<nonce>] <text>``: the source label is prefixed to
the first line (a one-line text stays one line) and carries a nonce unique to
this delivery. The text is sanitized first (``fleet_queue.sanitize.sanitize_text``:
control bytes other than newline and tab removed, CR/CRLF to LF).

Before typing, the pane's terminal is read (``workers.tty``): a foreground
program that is not waiting for input is refused (``AgentBusyError``), nothing
typed. How the text goes depends on how the program reads:

- a line reader (canonical mode): any input it has not read is discarded, then
  the text and a final newline are pasted unbracketed with LF kept
  (``paste-buffer -r``). A line longer than the terminal keeps (4,095 bytes with
  its newline) would be cut by the kernel: the delivery is refused instead;
- a raw-mode program (a TUI): bracketed paste (``paste-buffer -p``), so newlines
  and tabs are text, not keys, then ``Enter``.

Verify (``workers.acceptance``) waits for evidence naming this delivery and fails
closed; on failure the terminal's unread input is discarded, so nothing of the
text arrives later. Every tmux command goes through one persistent control-mode
client and its answer is checked.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
import time
from dataclasses import replace
from datetime import datetime

from fleet_queue.errors import AgentBusyError, DeliveryError, HostError, RosterError
from fleet_queue.roster import Roster
from fleet_queue.settings import Settings
from workers import tty as ttys
from workers.acceptance import (
    Pending,
    PromptEvidence,
    Snapshot,
    clear_pending,
    digest,
    history_rows,
    is_draft,
    marker,
    new_nonce,
)
from workers.delivery_text import (
    DeliveryReceipt,
    PaneState,
    Typing,
    check_whole,
    clean_body,
    label,
)
from workers.evidence import prompt_seen
from workers.heartbeat import is_healthy, read_heartbeat, utcnow
from workers.probe import BUSY_WINDOW
from workers.runtimes import LaunchPlan, launch_plan
from workers.tmux import ControlClient, TmuxServer, pane_target

VERIFY_TIMEOUT = 5.0
VERIFY_POLL_MAX = 0.01
"""Longest pause between two looks at the pane while verifying: an agent that takes the
text in 12 ms is seen at ~15 ms, not at 35 ms (one look is three control-mode commands)."""
_buffer_ids = itertools.count(1)

__all__ = ["Deliverer", "DeliveryReceipt", "label"]
"""What callers take from here; the receipt and the label live in ``delivery_text``."""


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
        evidence: PromptEvidence | None = prompt_seen,
    ) -> None:
        self.settings = settings
        self.roster = roster
        self.verify_timeout = verify_timeout
        self.busy_window = busy_window
        self.trust_native_idle = trust_native_idle
        self.evidence = evidence
        self.server = TmuxServer.for_fleet(settings, roster)
        self.control: ControlClient = self.server.control()
        self._plans: dict[str, LaunchPlan] = {}
        self._pane_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def close(self) -> None:
        self.control.close()

    def deliver(
        self,
        agent: str,
        text: str,
        *,
        source: str,
        verify: bool = True,
        force: bool = False,
        not_after: float | None = None,
    ) -> DeliveryReceipt:
        """Type ``text`` into ``agent``'s pane; ``DeliveryError`` (one line) on any failure.

        ``not_after`` (``time.monotonic()``): nothing is typed from then on, however long
        the looks before the typing took or the process was stopped; ``AgentBusyError``.
        """
        label(source)  # an empty source is refused before anything else
        body = clean_body(text)
        plan = self._plan(agent)
        if plan.tab_as is not None:
            body = body.replace("\t", plan.tab_as)
        with self._pane_lock(agent):
            try:
                return self._deliver(plan, body, source, verify, force, not_after)
            except DeliveryError:
                raise
            except HostError as exc:
                raise DeliveryError(f"agent {agent!r}: {exc.message}") from None

    def _deliver(
        self,
        plan: LaunchPlan,
        body: str,
        source: str,
        verify: bool,
        force: bool,
        not_after: float | None = None,
    ) -> DeliveryReceipt:
        started = time.perf_counter()
        target = pane_target(plan.agent)
        state = self._pane_state(plan.agent)
        if state.dead:
            raise DeliveryError(f"agent {plan.agent!r}: pane is dead (run `fleet start`)")
        tty = self._tty(state)
        if tty is not None and tty.reading is False:
            raise AgentBusyError(
                f"agent {plan.agent!r} is not reading its terminal ({tty.why}); nothing typed"
            )
        self._refuse_waiting(plan)
        if not force:
            self._refuse_busy(plan, state)
        sha = digest(source + "\0" + body)
        nonce = new_nonce()
        typing = Typing(
            plan, target, label(source, nonce) + body, nonce, state.width, state.height,
            tty, {}, utcnow(),
        )  # fmt: skip
        if typing.canonical:
            check_whole(plan.agent, typing.message)
        elif verify:
            earlier = self._earlier_copy(typing, sha, source, body, started, force)
            if earlier is not None:
                return earlier
        if not_after is not None and time.monotonic() >= not_after:
            raise AgentBusyError(
                f"agent {plan.agent!r}: the time to type has run out (lease ending); nothing typed"
            )
        if state.in_mode:
            self.control.command("send-keys", "-X", "-t", target, "cancel")
        pending = Pending(nonce, sha, source, time.time())
        if verify:
            pending.save(self.settings.run_dir, plan.agent)
        if tty is not None:
            typing.reads_before = ttys.bytes_read(tty.foreground)
        method = self._type(typing)
        elapsed = (time.perf_counter() - started) * 1000
        if not verify:
            return self._receipt(typing, source, method, None, elapsed)
        verify_started = time.perf_counter()
        try:
            evidence = self._verify(typing)
        except DeliveryError:
            replace(pending, taken=typing.taken).save(self.settings.run_dir, plan.agent)
            raise
        clear_pending(self.settings.run_dir, plan.agent)
        verify_ms = (time.perf_counter() - verify_started) * 1000
        return self._receipt(typing, source, method, evidence, elapsed, verify_ms)

    def _receipt(
        self,
        typing: Typing,
        source: str,
        method: str,
        evidence: str | None,
        elapsed: float,
        verify_ms: float | None = None,
    ) -> DeliveryReceipt:
        return DeliveryReceipt(
            agent=typing.plan.agent,
            host=self.settings.host,
            source=source,
            text=typing.message,
            method=method,
            verified=None if evidence is None else True,
            elapsed_ms=elapsed,
            verify_ms=verify_ms,
            nonce=typing.nonce,
            evidence=evidence,
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
                "#{pane_dead}\t#{pane_in_mode}\t#{window_activity}\t#{pane_width}"
                "\t#{pane_height}\t#{pane_tty}\t#{pane_pid}",
            )
        except HostError as exc:
            if "can't find" in exc.message:
                raise DeliveryError(
                    f"agent {agent!r}: no tmux session (run `fleet start`)"
                ) from None
            raise
        dead, in_mode, activity, width, height, tty, pid = (line[0] if line else "").split("\t")
        return PaneState(
            dead == "1", in_mode == "1", int(activity or 0), int(width or 80),
            int(height or 24), tty, int(pid) if pid.isdigit() else None,
        )  # fmt: skip

    def _tty(self, state: PaneState) -> ttys.TtyState | None:
        """The pane terminal's modes and reader; None where the kernel does not say."""
        if not state.tty or state.pid is None:
            return None
        try:
            return ttys.inspect(state.tty, state.pid)
        except OSError:
            return None

    def _refuse_waiting(self, plan: LaunchPlan) -> None:
        """A runtime that asks a person (a permission dialog) has the keyboard: typed text
        would answer the dialog, so nothing is typed, not even with ``force``."""
        hb = read_heartbeat(self.settings.run_dir, plan.agent)
        healthy = hb is not None and is_healthy(hb, self.settings.heartbeat_interval)
        if hb is not None and healthy and hb.status == "waiting":
            raise AgentBusyError(
                f"agent {plan.agent!r} is waiting for a person (a permission prompt,"
                f" card {hb.card or '-'}); answer it with `fleet agent attach`; nothing typed"
            )

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

    def _type(self, typing: Typing) -> str:
        """A line reader gets the text and its newline as typed lines; a raw-mode program a
        bracketed paste (tabs and newlines stay text), then Enter."""
        ctl = self.control
        buffer = f"fleet-{os.getpid()}-{next(_buffer_ids)}"
        if typing.canonical:
            assert typing.tty is not None
            ttys.flush_input(typing.tty.path, settle=0.0, rounds=1)  # no half line before ours
            ctl.command("set-buffer", "-b", buffer, "--", typing.message + "\n")
            paste = ("paste-buffer", "-r", "-d", "-b", buffer, "-t", typing.target)
        else:
            ctl.command("set-buffer", "-b", buffer, "--", typing.message)
            paste = ("paste-buffer", "-p", "-d", "-b", buffer, "-t", typing.target)
        try:
            ctl.command(*paste)
        except HostError:
            self._drop_buffer(buffer)
            raise
        if typing.canonical:
            return "line"
        if typing.plan.submit_delay:
            time.sleep(typing.plan.submit_delay)
        ctl.command("send-keys", "-t", typing.target, "Enter")
        return "paste"

    def _drop_buffer(self, buffer: str) -> None:
        with contextlib.suppress(HostError):
            self.control.command("delete-buffer", "-b", buffer)

    def _snapshot(self, target: str, history: int = 0, height: int = 0) -> Snapshot | None:
        """Screen (and history rows) and cursor, or None when the cursor moved meanwhile."""
        first = self._cursor(target)
        args = ("capture-pane", "-p", "-t", target)
        rows = self.control.command(*args, "-S", f"-{history}") if history else None
        rows = rows if rows is not None else self.control.command(*args)
        if self._cursor(target) != first:
            return None
        split = max(len(rows) - height, 0) if history else 0
        return Snapshot(tuple(rows[split:]), first[0], first[1], tuple(rows[:split]))

    def _cursor(self, target: str) -> tuple[int, int]:
        line = self.control.command(
            "display-message", "-p", "-t", target, "#{cursor_x}\t#{cursor_y}"
        )
        x, _, y = (line[0] if line else "0\t0").partition("\t")
        return int(x or 0), int(y or 0)

    def _verify(self, typing: Typing) -> str:
        """The evidence that accepted this delivery; ``DeliveryError`` when none came in time.

        On failure the terminal's unread input is discarded first and the evidence looked
        at once more: after the flush nothing of the text can arrive, so that last look's
        answer stays true.
        """
        deadline = time.monotonic() + self.verify_timeout
        pause = 0.001  # then 2, 4, 8, 10 ms: most agents take the text within a few ms
        while True:
            found = self._accepted(typing)
            if found:
                return found
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, VERIFY_POLL_MAX)
        if typing.tty is not None:
            ttys.flush_input(typing.tty.path)
        found = self._accepted(typing)
        if found:
            return found
        raise DeliveryError(
            f"agent {typing.plan.agent!r}: delivery not accepted within {self.verify_timeout}s"
            f" ({typing.why}); its unread input was discarded"
        )

    def _accepted(self, typing: Typing) -> str | None:
        """The name of the evidence that this delivery was accepted, or None (``why`` says)."""
        size = typing.size
        tty = typing.tty
        if typing.canonical and tty is not None:
            got = ttys.read_since(typing.reads_before, tty.foreground)
            typing.taken = got >= size
            typing.why = f"the program read {got} of {size} bytes"
            with contextlib.suppress(OSError), ttys.opened(tty.path) as fd:
                if got >= size and ttys.queued_input(fd) == 0:
                    return "read"
            return None
        if self.evidence is not None:
            seen = self.evidence(typing.plan, digest(typing.message), typing.since)
            if seen:
                return "runtime"
            if seen is False:  # the runtime keeps a record of prompts: only it counts
                typing.why = "the runtime has not recorded the prompt"
                return None
        snap = self._snapshot(
            typing.target, history_rows(typing.message, typing.width), typing.height
        )
        return self._on_screen(typing, snap, typing.nonce)

    def _on_screen(self, typing: Typing, snap: Snapshot | None, nonce: str) -> str | None:
        if typing.reads_before and typing.tty is not None:
            got = ttys.read_since(typing.reads_before, typing.tty.foreground)
            typing.taken = got >= typing.size
        if snap is None:
            typing.why = "the cursor kept moving"
            return None
        if not snap.shows(marker(nonce)):
            typing.why = "its marker never reached the screen"
            return None
        markers = [re.compile(m) for m in typing.plan.draft_markers]
        if is_draft(snap, typing.message, typing.width, markers):
            typing.why = "still a draft in the input line"
            return None
        if typing.reads_before and not typing.taken:
            typing.why = "the program did not read all of its bytes"
            return None
        return "screen"

    def _earlier_copy(
        self, typing: Typing, sha: str, source: str, body: str, started: float, force: bool
    ) -> DeliveryReceipt | None:
        """A retry of a text whose verify failed: the earlier copy's receipt if it was
        accepted after all; an error if it still sits on the input line, or the program
        took its bytes and may yet accept it (unless forced); else None: type it."""
        run_dir = self.settings.run_dir
        pending = Pending.load(run_dir, typing.plan.agent)
        if pending is None or not pending.matches(sha, source):
            return None
        earlier = Typing(
            typing.plan, typing.target, label(source, pending.nonce) + body, pending.nonce,
            typing.width, typing.height, typing.tty, {}, typing.since,
        )  # fmt: skip
        since = datetime.fromtimestamp(pending.at, typing.since.tzinfo)
        seen = self.evidence(typing.plan, digest(earlier.message), since) if self.evidence else None
        snap = self._snapshot(
            typing.target, history_rows(earlier.message, typing.width), typing.height
        )
        found = "runtime" if seen else self._on_screen(earlier, snap, pending.nonce)
        if found is None and earlier.why == "still a draft in the input line":
            raise DeliveryError(
                f"agent {typing.plan.agent!r}: an earlier copy of this text"
                f" ({marker(pending.nonce)}) is still a draft in the input line; not typed again"
            )
        if found is None and pending.taken and not force:
            raise DeliveryError(
                f"agent {typing.plan.agent!r}: an earlier copy of this text"
                f" ({marker(pending.nonce)}) was read by the program but not yet seen accepted;"
                " not typed again (--force types it again)"
            )
        clear_pending(run_dir, typing.plan.agent)
        if found is None:
            return None
        elapsed = (time.perf_counter() - started) * 1000
        return self._receipt(earlier, source, "earlier", found, elapsed, 0.0)
