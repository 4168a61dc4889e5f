"""The stub agent (runtime ``stub``): a tiny interactive program for demos and tests.

It behaves like an agent TUI where it matters to delivery: a prompt, raw tty
input, bracketed paste (``ESC[?2004h``) so a pasted multi-line text is ONE
message, Enter submits. Every message is logged exactly, one JSON record per
line in ``run/<agent>.stub.jsonl`` (``{"kind": "message", "text": ...}``), so a
test can compare what arrived with what was sent.

A message containing ``fleet card done <ID> --token <N>`` is a card: the stub
heartbeats ``busy card=<ID>``, works ``--work`` seconds, then completes it the
way a real agent is told to (``python -m fleet_queue card done ID --token N``),
logging the command and its exit code (``{"kind": "command", ...}``). Any other message
is a conversation turn: after ``--reply-work`` seconds (busy meanwhile when above zero) the
stub answers it with a reply record, ``{"kind": "reply", "prompt_sha256", "text"}``, its
own record of the turn, which the chat connector reads the way it reads Claude Code's
transcript (``workers.turn_replies``); the pane is never read for it.

    python -m workers.stub_agent --agent NAME [--work S] [--mode ok|fail|hang|exit]
                                 [--complete cli|api] [--reply-work S] [--log PATH]

Each option also comes from the environment (so a roster's ``env:`` can set it):
FLEET_STUB_WORK, FLEET_STUB_MODE, FLEET_STUB_COMPLETE, FLEET_STUB_REPLY_WORK,
FLEET_STUB_LOG. ``--complete cli`` (the default) closes a card the way a real agent
does, a ``fleet`` process per card; ``--complete api`` sends the same close from this
process instead (no interpreter start per card, for throughput benchmarks): to the host
worker's agent socket as ``fleet card done`` would, or through the Python API when no
worker serves it; same store call, same token fence. Every record carries ``t``, the
receive time as epoch seconds (float), for latency measurements.
Modes: ``ok`` completes the card; ``fail`` runs ``card fail … --reason``; ``hang``
stays busy forever, still heartbeating; ``exit`` exits (code 3) as soon as a card
arrives; ``wedge`` freezes on a card (no more heartbeats, no more input read), like a hung runtime.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet_queue.private import private_umask
from workers.heartbeat import beat

CARD_RE = re.compile(r"fleet card done (\S+) --token (\d+)")
LABEL_RE = re.compile(r"^\[from [^\]]*\] ")
MODES = ("ok", "fail", "hang", "exit", "wedge")
COMPLETIONS = ("cli", "api")
PASTE_START = b"\x1b[200~"
PASTE_END = b"\x1b[201~"
EXIT_ON_CARD = 3


def log_path(run_dir: Path, agent: str) -> Path:
    return run_dir / f"{agent}.stub.jsonl"


def read_stub_log(path: Path) -> list[dict[str, Any]]:
    """Every record the stub wrote (messages and commands), oldest first."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def received_messages(path: Path) -> list[str]:
    return [r["text"] for r in read_stub_log(path) if r.get("kind") == "message"]


def reply_to(agent: str, text: str) -> str:
    """The stub's answer to a conversation turn: the text it heard, without the label."""
    return f"{agent} heard: {LABEL_RE.sub('', text, count=1)}"


class LineEditor:
    """Raw tty bytes to messages: bracketed paste keeps newlines, Enter submits."""

    def __init__(self, on_message: Callable[[str], None], echo: Callable[[bytes], None]) -> None:
        self.on_message = on_message
        self._write = echo
        self._pending = bytearray()
        self.draft = bytearray()
        self.in_paste = False
        self.escape = bytearray()

    def feed(self, data: bytes) -> None:
        try:
            for byte in data:
                self._byte(byte)
        finally:
            self._flush()

    def echo(self, data: bytes) -> None:
        self._pending += data

    def _flush(self) -> None:
        if self._pending:
            self._write(bytes(self._pending))
            self._pending.clear()

    def _byte(self, byte: int) -> None:
        if self.escape:
            self.escape.append(byte)
            self._escape_step()
            return
        if byte == 0x1B:
            self.escape.append(byte)
            return
        if self.in_paste:
            char = b"\n" if byte == 0x0D else bytes([byte])
            self.draft += char
            self.echo(b"\r\n" if char == b"\n" else char)
            return
        self._key(byte)

    def _escape_step(self) -> None:
        seq = bytes(self.escape)
        if len(seq) == 2 and seq[1:] != b"[":
            self.escape.clear()  # alt-key or lone ESC: ignored
            return
        if len(seq) > 2 and 0x40 <= seq[-1] <= 0x7E:
            self.escape.clear()
            if seq == PASTE_START:
                self.in_paste = True
            elif seq == PASTE_END:
                self.in_paste = False
        elif len(seq) > 32:
            self.escape.clear()

    def _key(self, byte: int) -> None:
        if byte in (0x0D, 0x0A):
            self.echo(b"\r\n")
            self._flush()
            text = self.draft.decode("utf-8", errors="replace")
            self.draft.clear()
            self.on_message(text)
        elif byte in (0x7F, 0x08):
            self._backspace()
        elif byte in (0x03, 0x15):
            self.draft.clear()
            self.echo(b"^C\r\n")
            self._flush()
            self.on_message("")
        elif byte == 0x04 and not self.draft:
            raise EOFError
        elif byte >= 0x20 or byte == 0x09:
            self.draft.append(byte)
            self.echo(bytes([byte]))

    def _backspace(self) -> None:
        if not self.draft:
            return
        del self.draft[-1]
        while self.draft and (self.draft[-1] & 0xC0) == 0x80:
            del self.draft[-1]
        if self.draft and self.draft[-1] >= 0xC0:
            del self.draft[-1]
        self.echo(b"\b \b")


class StubAgent:
    def __init__(
        self,
        agent: str,
        run_dir: Path,
        interval: float,
        work: float,
        mode: str,
        log: Path,
        completion: str = "cli",
        reply_work: float = 0.0,
    ) -> None:
        self.agent = agent
        self.run_dir = run_dir
        self.interval = interval
        self.work = work
        self.mode = mode
        self.log = log
        self.completion = completion
        self.reply_work = reply_work
        self._backlog: Any = None
        self.status = "ok"
        self.card: str | None = None
        self.cards: queue.Queue[tuple[str, str]] = queue.Queue()
        """Work in order: ``(card, token)``, or ``("", text)`` for a turn to answer."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self.wedged = False

    def record(self, kind: str, **fields: Any) -> None:
        now = time.time()
        entry = {
            "ts": datetime.fromtimestamp(now, UTC).isoformat(),
            "t": now,
            "kind": kind,
            **fields,
        }
        with self._lock:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")

    def out(self, data: bytes) -> None:
        with self._lock:
            os.write(sys.stdout.fileno(), data)

    def prompt(self) -> None:
        self.out(f"stub:{self.agent}> ".encode())

    def set_status(self, status: str, card: str | None) -> None:
        self.status, self.card = status, card
        if not self.wedged:
            beat(self.run_dir, self.agent, status=status, card=card)

    def heartbeat_loop(self) -> None:
        while not self.wedged:
            beat(self.run_dir, self.agent, status=self.status, card=self.card)
            self._wake.wait(self.interval)
            self._wake.clear()

    def on_message(self, text: str) -> None:
        if not text:
            self.prompt()
            return
        self.record("message", text=text, chars=len(text), bytes=len(text.encode("utf-8")))
        self.out(f"\u00bb received {len(text)} chars\r\n".encode())
        if text.strip() == "/clear":
            self.out(b"\x1b[2J\x1b[H")
        match = CARD_RE.search(text)
        if match:
            if self.mode == "exit":
                self.record("exit", card=match.group(1))
                raise SystemExit(EXIT_ON_CARD)
            if self.mode == "wedge":
                self.record("wedge", card=match.group(1))
                self.wedged = True
                threading.Event().wait()
            self.cards.put((match.group(1), match.group(2)))
        elif text.strip() != "/clear":
            if self.reply_work > 0:
                self.cards.put(("", text))
            else:
                self.answer(text)
        self.prompt()

    def answer(self, text: str) -> None:
        """End a conversation turn: the reply goes to the log, keyed by the prompt's hash."""
        prompt_sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.record("reply", prompt_sha256=prompt_sha, text=reply_to(self.agent, text))
        self.out("\u00bb replied\r\n".encode())

    def work_loop(self) -> None:
        while True:
            card, token = self.cards.get()
            try:
                if not card:
                    self.answer_later(token)
                    continue
                self.work_on(card, token)
            except Exception as exc:  # one bad card must not leave the agent deaf to the next
                self.record("error", card=card, error=f"{type(exc).__name__}: {exc}")
                self.out(f"\u00bb card {card}: error {type(exc).__name__}\r\n".encode())

    def answer_later(self, text: str) -> None:
        self.set_status("busy", None)
        time.sleep(self.reply_work)
        self.answer(text)
        self.prompt()
        self.set_status("ok", None)

    def work_on(self, card: str, token: str) -> None:
        self.set_status("busy", card)
        if self.mode == "hang":
            threading.Event().wait()
        time.sleep(self.work)
        self.complete(card, token)
        self.set_status("ok", None)

    def complete(self, card: str, token: str) -> None:
        verb = (
            ["card", "fail", card, "--token", token, "--reason", "stub agent: fail mode"]
            if self.mode == "fail"
            else ["card", "done", card, "--token", token]
        )
        argv = [sys.executable, "-m", "fleet_queue", *verb]
        if self.completion == "api":
            code, output = self._complete_in_process(verb, card, int(token))
        else:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            code, output = proc.returncode, proc.stdout + proc.stderr
        self.record(
            "command",
            argv=argv if self.completion == "cli" else ["api", *verb],
            card=card,
            token=token,
            exit_code=code,
            output=output[-2000:],
        )
        self.out(f"\u00bb card {card}: {verb[1]} exit {code}\r\n".encode())
        self.prompt()

    def _complete_in_process(self, verb: list[str], card: str, token: int) -> tuple[int, str]:
        """``fleet card done|fail`` without a process per card: the same request to the host
        worker's agent socket (``fleet_queue.fast_close``), else the same store call."""
        from fleet_queue import fast_close
        from fleet_queue.api import Backlog
        from fleet_queue.errors import FleetError

        answered = fast_close.close_answer(verb)
        if answered is not None:
            out, err, code = answered
            return code, out + err
        try:
            if self._backlog is None:
                self._backlog = Backlog()
            if self.mode == "fail":
                self._backlog.fail(card, token, "stub agent: fail mode")
            else:
                self._backlog.complete(card, token)
        except FleetError as exc:
            return exc.exit_code, f"fleet: {exc.message}"
        return 0, ""


def serve(stub: StubAgent) -> int:
    threading.Thread(target=stub.heartbeat_loop, daemon=True).start()
    threading.Thread(target=stub.work_loop, daemon=True).start()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    if saved is not None:
        tty.setraw(fd)
    editor = LineEditor(stub.on_message, stub.out)
    stub.record("start", pid=os.getpid(), mode=stub.mode, work=stub.work)
    stub.out(b"\x1b[?2004h")
    stub.prompt()
    try:
        while True:
            data = os.read(fd, 65536)
            if not data:
                return 0
            editor.feed(data)
    except EOFError:
        return 0
    finally:
        stub.out(b"\x1b[?2004l\r\n")
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _settings_defaults() -> tuple[Path, float]:
    home = Path(os.environ.get("FLEET_HOME", "~/.config/fleet-queue")).expanduser()
    interval = float(os.environ.get("FLEET_HEARTBEAT_INTERVAL", "5"))
    return home / "run", interval


def main(argv: list[str] | None = None) -> int:
    private_umask()  # its log and heartbeats hold card text: private (docs/security.md)
    run_dir, interval = _settings_defaults()
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m workers.stub_agent")
    parser.add_argument(
        "--agent", default=env.get("FLEET_AGENT"), required="FLEET_AGENT" not in env
    )
    parser.add_argument(
        "--work",
        type=float,
        default=float(env.get("FLEET_STUB_WORK", "1.0")),
        help="seconds of simulated work per card [env FLEET_STUB_WORK]",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default=env.get("FLEET_STUB_MODE", "ok"),
        help="what to do with a card [env FLEET_STUB_MODE]",
    )
    parser.add_argument(
        "--complete",
        choices=COMPLETIONS,
        default=env.get("FLEET_STUB_COMPLETE", "cli"),
        help="close cards with a `fleet` process (cli) or from this process (api)"
        " [env FLEET_STUB_COMPLETE]",
    )
    parser.add_argument(
        "--reply-work",
        type=float,
        default=float(env.get("FLEET_STUB_REPLY_WORK", "0")),
        help="seconds busy before answering a message that is not a card"
        " [env FLEET_STUB_REPLY_WORK]",
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=env.get("FLEET_STUB_LOG"),
        help="message log [env FLEET_STUB_LOG; default run/<agent>.stub.jsonl]",
    )
    parser.add_argument("--run-dir", type=Path, default=run_dir)
    parser.add_argument("--interval", type=float, default=interval)
    args = parser.parse_args(argv)
    if args.mode not in MODES:
        parser.error(f"--mode must be one of {', '.join(MODES)}")
    log = args.log or log_path(args.run_dir, args.agent)
    stub = StubAgent(
        args.agent, args.run_dir, args.interval, args.work, args.mode, log, args.complete,
        args.reply_work,
    )  # fmt: skip
    return serve(stub)


if __name__ == "__main__":
    sys.exit(main())
