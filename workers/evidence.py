"""What a real runtime itself recorded: its state (from its hooks) and the prompts it took.

Claude Code runs our hooks (``workers.hooks``) at session start, prompt submit,
turn end, permission prompt and session end (pi and opencode run them from the
extension and plugin ``fleet start`` gives them); they write ``run/<agent>.state``
(``status card``) and append each submitted prompt's sha256 to
``run/<agent>.prompts``. Codex writes its own session rollout
(``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl``): a ``task_started`` event
opens a turn, ``task_complete`` closes it, and the user message is there word
for word; an attended Codex also runs our hooks at its approval prompt
(``PermissionRequest``: ``waiting``) and after a tool call (``PostToolUse``: ``busy``).
Either is better evidence than the pane: the runtime says it.

The sidecar (``workers.sidecar``) calls ``sidecar_beat`` every interval: while
the pane's process lives it rewrites heartbeat v1 with the status this evidence
gives. A hook writes the heartbeat at once too, under the same lock, so a
sidecar beat never puts back a status a hook just replaced.

Standard library only: the hooks import this module on every event.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from workers.heartbeat import Heartbeat, read_heartbeat, utcnow, write_heartbeat

CARD_RE = re.compile(r"fleet card done (\S+) --token \d+")
"""The closing command every card text ends with (``fleet_queue.card_text``)."""
STARTING = "busy"
"""A hooked runtime's status before its first hook: not ready for input yet."""
PROMPTS_KEPT = 200
PROMPT_RECORDS = ("claude", "codex", "pi", "opencode")
"""Runtimes whose own record of a taken prompt we read: hooks (claude; pi's extension and
opencode's plugin run the same hook program) or Codex's rollout."""
ROLLOUT_TAIL = 256 * 1024
"""Bytes of the newest rollout read per look: one turn's events fit many times over."""


class PaneOf(Protocol):
    """What ``prompt_seen`` reads of a ``workers.runtimes.LaunchPlan``: named by shape, not
    imported, since ``runtimes`` sits above this module (it prepares homes that write here)."""

    @property
    def agent(self) -> str: ...

    @property
    def env(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class RuntimeInfo:
    """``run/<agent>.runtime.json``, written by ``fleet start``: what the evidence is."""

    runtime: str
    started: float
    codex_home: str | None = None


def info_path(run_dir: Path, agent: str) -> Path:
    return run_dir / f"{agent}.runtime.json"


def state_path(run_dir: Path, agent: str) -> Path:
    return run_dir / f"{agent}.state"


def prompts_path(run_dir: Path, agent: str) -> Path:
    return run_dir / f"{agent}.prompts"


def turns_path(run_dir: Path, agent: str) -> Path:
    """One JSON line per turn end (Stop/StopFailure): when, and where the transcript is."""
    return run_dir / f"{agent}.turns"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def card_of(text: str) -> str | None:
    """The card a delivered text is for: the id in its last closing command."""
    found = CARD_RE.findall(text)
    return found[-1] if found else None


def write_info(run_dir: Path, agent: str, info: RuntimeInfo) -> None:
    """Fresh evidence for a fresh process: the old state and prompts go."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path(run_dir, agent).unlink(missing_ok=True)
    prompts_path(run_dir, agent).unlink(missing_ok=True)
    turns_path(run_dir, agent).unlink(missing_ok=True)
    write_private(info_path(run_dir, agent), json.dumps(info.__dict__))


def read_info(run_dir: Path, agent: str) -> RuntimeInfo | None:
    try:
        data = json.loads(info_path(run_dir, agent).read_text(encoding="utf-8"))
        return RuntimeInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


@contextmanager
def locked(run_dir: Path, agent: str) -> Iterator[None]:
    """One writer of the agent's heartbeat at a time (hooks and the sidecar)."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(run_dir / f".{agent}.hb.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_state(run_dir: Path, agent: str) -> tuple[str, str | None] | None:
    try:
        status, _, card = state_path(run_dir, agent).read_text(encoding="utf-8").partition(" ")
    except OSError:
        return None
    card = card.strip()
    return status.strip(), (None if card in ("", "-") else card)


def set_state(run_dir: Path, agent: str, status: str, card: str | None) -> None:
    """A hook's word: state file and heartbeat at once, the pid kept from the sidecar's beat."""
    with locked(run_dir, agent):
        write_private(state_path(run_dir, agent), f"{status} {card or '-'}\n")
        previous = read_heartbeat(run_dir, agent)
        pid = previous.pid if previous else _pane_pid()
        write_heartbeat(run_dir, agent, Heartbeat(utcnow(), pid, status, card))


def record_prompt(run_dir: Path, agent: str, prompt: str) -> None:
    """Append ``<iso ts> <sha256>`` for a prompt the runtime accepted (last 200 kept)."""
    path = prompts_path(run_dir, agent)
    line = f"{utcnow().isoformat()} {sha256(prompt)}\n"
    with locked(run_dir, agent):
        try:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        except OSError:
            lines = []
        write_private(path, "".join([*lines[-(PROMPTS_KEPT - 1) :], line]))


def record_turn_end(run_dir: Path, agent: str, event: str, payload: dict[str, object]) -> None:
    """Append the end of a turn: the chat connector reads the reply from the transcript it
    names (``workers.turn_replies``), never from the pane. Last 200 kept."""
    path = turns_path(run_dir, agent)
    fields = ("transcript_path", "session_id", "last_assistant_message")
    entry: dict[str, object] = {"ts": utcnow().isoformat(), "event": event}
    entry.update({key: payload[key] for key in fields if isinstance(payload.get(key), str)})
    with locked(run_dir, agent):
        try:
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        except OSError:
            lines = []
        write_private(path, "".join([*lines[-(PROMPTS_KEPT - 1) :], json.dumps(entry) + "\n"]))


def sidecar_beat(run_dir: Path, agent: str, pid: int) -> Heartbeat:
    """The sidecar's beat: the pane's pid is alive; the status is the runtime's evidence."""
    info = read_info(run_dir, agent)
    with locked(run_dir, agent):
        status, card = _status(run_dir, agent, info)
        hb = Heartbeat(utcnow(), pid, status, card)
        write_heartbeat(run_dir, agent, hb)
    return hb


def codex_hook(run_dir: Path, agent: str, status: str | None) -> None:
    """A Codex hook's word (``waiting``: it asks a person; ``busy``: a tool call ended) in the
    state file, and the heartbeat from all the evidence at once, the pid kept.

    ``notify`` (``None``) only beats: it also ends Codex's side turns (the thread's title),
    which may run while the card's turn waits for a person."""
    info = read_info(run_dir, agent)
    with locked(run_dir, agent):
        if status is not None:
            write_private(state_path(run_dir, agent), f"{status} -\n")
        previous = read_heartbeat(run_dir, agent)
        now, card = _status(run_dir, agent, info)
        pid = previous.pid if previous else _pane_pid()
        write_heartbeat(run_dir, agent, Heartbeat(utcnow(), pid, now, card))


def _status(run_dir: Path, agent: str, info: RuntimeInfo | None) -> tuple[str, str | None]:
    if info is None:
        return "ok", None
    if info.runtime == "codex" and info.codex_home:
        return codex_status(Path(info.codex_home), info.started, _asked(run_dir, agent))
    state = read_state(run_dir, agent)
    return state if state is not None else (STARTING, None)


def prompt_seen(plan: PaneOf, text_sha256: str, since: datetime) -> bool | None:
    """The delivery's ``PromptEvidence``: did the runtime itself take this prompt?

    ``text_sha256`` is the sha256 (hex, UTF-8) of exactly the text typed, source label
    included; ``since`` is when typing began (aware). True when the Claude Code
    UserPromptSubmit hook (or pi's extension, opencode's plugin) recorded a prompt with
    that hash at or after ``since``, or a Codex rollout of this agent holds a user message
    with that hash written at or after ``since``; False when the runtime keeps such a
    record and it has no match (yet); None for a runtime without one (stub, custom
    commands).
    """
    run_dir = Path(plan.env.get("FLEET_HOME", "")) / "run"
    info = read_info(run_dir, plan.agent)
    if info is None or info.runtime not in PROMPT_RECORDS:
        return None
    if info.runtime == "codex" and info.codex_home:
        return text_sha256 in codex_prompts(Path(info.codex_home), since)
    try:
        lines = prompts_path(run_dir, plan.agent).read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    for line in reversed(lines):
        stamp, _, digest = line.partition(" ")
        if digest == text_sha256 and parse_ts(stamp) >= since:
            return True
    return False


def latest_rollout(codex_home: Path, since: float) -> Path | None:
    """The newest rollout file written since the process started, if any."""
    newest: tuple[float, Path] | None = None
    for path in (codex_home / "sessions").glob("*/*/*/rollout-*.jsonl"):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if mtime >= since and (newest is None or mtime > newest[0]):
            newest = (mtime, path)
    return newest[1] if newest else None


def rollout_entries(path: Path, tail: int = ROLLOUT_TAIL) -> list[dict[str, object]]:
    """The parsed last ``tail`` bytes of a JSON-lines file such as a rollout (a partial
    first or last line is skipped)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - tail, 0))
            raw = handle.read()
    except OSError:
        return []
    entries = []
    for line in raw.split(b"\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


CODEX_THREAD_STARTED = "%app-server event: thread/started%"
CODEX_TUI_CLIENT = '%client_name="codex-tui"%'
CODEX_ANSWERED = "%app-server event: serverRequest/resolved%"


def codex_status(
    codex_home: Path, started: float, asked: datetime | None = None
) -> tuple[str, str | None]:
    """``busy`` from a ``task_started`` to its ``task_complete``, with the turn's card;
    ``waiting`` within it when Codex asked a person (``asked``) after its last rollout line.

    Codex 0.171 writes its rollout at the first prompt, not at start. Before it, the
    TUI is ready once its app-server has started the TUI's thread
    (``codex_thread_started``); until then it is still starting (``busy``): its
    composer is drawn seconds earlier, while the app-server it talks to still starts.

    Codex records no approval prompt in its rollout or logs: its ``PermissionRequest`` hook
    (``asked``: when it ran, just before the prompt is drawn) is the word. The prompt holds
    the turn, so the rollout is silent until the person answers. The answer reaches Codex's
    log (``codex_answered``), written in batches (seconds later: 6.7 s measured), and the
    command's output (or the refusal) the rollout, after which the ``PostToolUse`` hook
    runs: whichever comes first makes the turn ``busy`` again.
    """
    path = latest_rollout(codex_home, started)
    if path is None:
        return ("ok" if codex_thread_started(codex_home, started) else STARTING), None
    status, card, last = "ok", None, None
    for entry in rollout_entries(path):
        last = entry.get("timestamp", last)
        kind = event_type(entry)
        if kind == "task_started":
            status, card = "busy", None
        elif kind in ("task_complete", "turn_aborted"):
            status, card = "ok", None
        elif status == "busy" and card is None and (text := user_text(entry)) is not None:
            card = card_of(text)
    if status != "busy" or asked is None or asked <= parse_ts(str(last)):
        return status, card
    return ("busy" if codex_answered(codex_home, asked.timestamp()) else "waiting"), card


def _asked(run_dir: Path, agent: str) -> datetime | None:
    """When a Codex ``PermissionRequest`` hook last said ``waiting`` (and nothing since)."""
    state = read_state(run_dir, agent)
    if state is None or state[0] != "waiting":
        return None
    try:
        return datetime.fromtimestamp(state_path(run_dir, agent).stat().st_mtime, UTC)
    except OSError:
        return None


def codex_thread_started(codex_home: Path, started: float) -> bool:
    """Did Codex's app-server tell the TUI its thread started, since ``started``?

    The app-server's ``thread/started`` event for the ``codex-tui`` client is the moment a
    prompt typed into the TUI becomes a turn.
    """
    return _codex_logged(codex_home, int(started), CODEX_THREAD_STARTED, CODEX_TUI_CLIENT)


def codex_answered(codex_home: Path, since: float) -> bool:
    """Did the TUI answer a request of Codex's (an approval: ``serverRequest/resolved``,
    logged with the person's decision) at or after ``since``?"""
    return _codex_logged(codex_home, since, CODEX_ANSWERED)


def _codex_logged(codex_home: Path, since: float, *patterns: str) -> bool:
    """Is a line matching every LIKE pattern in Codex's log since ``since`` (epoch seconds)?

    Codex 0.171 logs to ``$CODEX_HOME/logs_<n>.sqlite`` (table ``logs``, ``ts`` in epoch
    seconds and ``ts_nanos``). Read-only; any error is no.
    """
    where = " AND ".join(["feedback_log_body LIKE ?"] * len(patterns))
    query = f"SELECT 1 FROM logs WHERE ts >= ? AND ts + ts_nanos / 1e9 >= ? AND {where} LIMIT 1"
    for db in sorted(codex_home.glob("logs_*.sqlite"), reverse=True):
        try:
            with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as con:
                row = con.execute(query, (int(since), since, *patterns)).fetchone()
        except sqlite3.Error:
            continue
        if row is not None:
            return True
    return False


def codex_prompts(codex_home: Path, since: datetime) -> set[str]:
    """sha256 of every user message Codex wrote to its rollouts at or after ``since``."""
    path = latest_rollout(codex_home, since.timestamp())
    found: set[str] = set()
    for entry in rollout_entries(path) if path else []:
        text = user_text(entry)
        if text is not None and parse_ts(str(entry.get("timestamp", ""))) >= since:
            found.add(sha256(text))
    return found


def event_type(entry: dict[str, object]) -> str | None:
    payload = entry.get("payload")
    if entry.get("type") == "event_msg" and isinstance(payload, dict):
        kind = payload.get("type")
        return kind if isinstance(kind, str) else None
    return None


def user_text(entry: dict[str, object]) -> str | None:
    payload = entry.get("payload")
    if entry.get("type") != "response_item" or not isinstance(payload, dict):
        return None
    if payload.get("type") != "message" or payload.get("role") != "user":
        return None
    content = payload.get("content")
    if not isinstance(content, list):
        return None
    texts = [
        part.get("text")
        for part in content
        if isinstance(part, dict) and part.get("type") == "input_text"
    ]
    return "".join(t for t in texts if isinstance(t, str))


def parse_ts(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _pane_pid() -> int:
    """The pane's root process: our topmost ancestor below the tmux server.

    Used only before the sidecar's first beat named it; the hook's own parent (a
    shell Claude Code runs the hook in) is gone a moment later.
    """
    pid = os.getppid()
    for _ in range(16):
        parent = _ppid(pid)
        if parent is None or parent <= 1:
            break
        if _comm(parent).startswith("tmux"):
            return pid
        pid = parent
    return os.getppid()


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[-1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def write_private(path: Path, text: str) -> None:
    """Atomic and 0600 from the start: agent state is private."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
