"""Read what the runtimes recorded they used: Claude Code transcripts, Codex rollouts and
pi session files.

Claude Code (``<CLAUDE_CONFIG_DIR>/projects/<slug>/<session>.jsonl``, subagents' files
below it): each ``assistant`` entry carries ``message.usage``, ``message.id``,
``requestId`` and ``message.model``. It writes one line per content block of a message,
each with the same usage: a message is counted once, by message id and request id (the
keys already counted are kept with the file's mark).

Codex (``<CODEX_HOME>/sessions/YYYY/MM/DD/rollout-*.jsonl``): ``token_count`` events carry
``total_token_usage`` (cumulative for the session) and ``last_token_usage``. The reader
counts the difference of the totals from the last total it saw, so an event repeated with
the same totals counts nothing; a total that went down (a new count) falls back to the
last request's usage. Its ``input_tokens`` include the cached ones: the ledger's
``input`` does not.

pi (``<PI_CODING_AGENT_DIR>/sessions/--<cwd>--/<time>_<id>.jsonl``): one ``message``
line per message; an assistant message carries ``usage`` (``input`` without the cached
part, ``output``, ``cacheRead``, ``cacheWrite``) and ``model``; a user message is the
prompt (its card). pi appends, so each line is counted once by the file's mark.

Reading is incremental: each file is read from its mark (a byte offset) to its last
complete line, and the new mark is stored with the ledger rows in one transaction. The
card of a turn is the one named in the prompt that started it (the closing command every
card text ends with), carried in the mark across reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet_queue.spend.usage import FileMark, Tokens, Turn
from workers.evidence import card_of
from workers.evidence import user_text as codex_user_text

MAX_READ = 16 * 1024 * 1024
"""Bytes read from one file per scan: a huge backlog is read over several scans."""
KEYS_KEPT = 500
"""Claude Code message keys kept with a file's mark: far more than one read's overlap."""
SYNTHETIC = "<synthetic>"
"""The model Claude Code names on messages it made itself (no request, no usage)."""


@dataclass(frozen=True)
class FileRead:
    """What one read of one file gave: the turns, and the mark to store with them."""

    path: Path
    turns: list[Turn]
    mark: FileMark


def claude_files(config_dir: Path) -> list[Path]:
    return sorted((config_dir / "projects").glob("**/*.jsonl"))


def codex_files(codex_home: Path) -> list[Path]:
    return sorted((codex_home / "sessions").glob("*/*/*/rollout-*.jsonl"))


def pi_files(agent_dir: Path) -> list[Path]:
    return sorted((agent_dir / "sessions").glob("*/*.jsonl"))


def unread(path: Path, mark: FileMark | None) -> bool:
    """True when the file holds bytes past its mark (or shrank: it was replaced)."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    return mark is None or size != mark.offset


def _lines(path: Path, offset: int) -> tuple[list[bytes], int, bool]:
    """Complete lines from ``offset``, the offset after them, and whether the file was
    replaced by a shorter one (then reading restarts at 0)."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        restarted = size < offset
        start = 0 if restarted else offset
        handle.seek(start)
        raw = handle.read(MAX_READ)
    end = raw.rfind(b"\n") + 1
    return raw[:end].split(b"\n")[:-1], start + end, restarted


def _entries(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def read_claude(path: Path, mark: FileMark | None, counted: set[str]) -> FileRead:
    """New assistant turns of a Claude Code transcript, each message once.

    ``counted``: message keys already counted for this agent (in any of its files); the
    keys this read counts are added to it.
    """
    state = dict(mark.state) if mark else {}
    lines, offset, restarted = _lines(path, mark.offset if mark else 0)
    card: str | None = None if restarted else state.get("card")
    keys: list[str] = list(state.get("keys", []))
    turns: list[Turn] = []
    for entry in _entries(lines):
        kind = entry.get("type")
        message = entry.get("message")
        if not isinstance(message, dict):
            continue
        if kind == "user" and not entry.get("isMeta"):
            prompt = _prompt_text(message.get("content"))
            if prompt is not None:
                card = card_of(prompt)
        elif kind == "assistant":
            key = f"{message.get('id')}:{entry.get('requestId')}"
            usage = message.get("usage")
            model = str(message.get("model") or "")
            if key in counted or not isinstance(usage, dict) or model in ("", SYNTHETIC):
                continue
            counted.add(key)
            keys.append(key)
            tokens = Tokens(
                _int(usage, "input_tokens"),
                _int(usage, "output_tokens"),
                _int(usage, "cache_read_input_tokens"),
                _int(usage, "cache_creation_input_tokens"),
            )
            turns.append(Turn(_when(entry), model, tokens, card))
    state.update(card=card, keys=keys[-KEYS_KEPT:])
    return FileRead(path, turns, FileMark(offset, state))


def _prompt_text(content: object) -> str | None:
    """The text a person (or the fleet) typed; None for a tool result."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    parts = [part for part in content if isinstance(part, dict)]
    if not parts or any(part.get("type") == "tool_result" for part in parts):
        return None
    texts = [part.get("text") for part in parts if part.get("type") == "text"]
    return "".join(t for t in texts if isinstance(t, str))


def read_codex(path: Path, mark: FileMark | None) -> FileRead:
    """New usage of a Codex rollout, from the differences of its cumulative totals."""
    state = dict(mark.state) if mark else {}
    lines, offset, restarted = _lines(path, mark.offset if mark else 0)
    if restarted:
        state = {}
    total: list[int] | None = state.get("total")
    model = str(state.get("model") or "")
    card: str | None = state.get("card")
    turns: list[Turn] = []
    for entry in _entries(lines):
        payload = entry.get("payload")
        if not isinstance(payload, dict):
            continue
        kind = entry.get("type")
        if kind == "turn_context" and payload.get("model"):
            model = str(payload["model"])
        elif (text := _codex_prompt(entry)) is not None:
            card = card_of(text)
        elif kind == "event_msg" and payload.get("type") == "token_count":
            info = payload.get("info")
            if not isinstance(info, dict):
                continue
            now = _codex_counts(info.get("total_token_usage"))
            if now is None or now == total:
                continue
            if total is not None and all(n >= t for n, t in zip(now, total, strict=True)):
                delta = [n - t for n, t in zip(now, total, strict=True)]
            else:
                delta = _codex_counts(info.get("last_token_usage")) or now
            total = now
            turns.append(Turn(_when(entry), model or "unknown", _codex_tokens(delta), card))
    state.update(total=total, model=model, card=card)
    return FileRead(path, turns, FileMark(offset, state))


def read_pi(path: Path, mark: FileMark | None) -> FileRead:
    """New assistant messages of a pi session file: one line per message, each once."""
    state = dict(mark.state) if mark else {}
    lines, offset, restarted = _lines(path, mark.offset if mark else 0)
    card: str | None = None if restarted else state.get("card")
    turns: list[Turn] = []
    for entry in _entries(lines):
        message = entry.get("message")
        if entry.get("type") != "message" or not isinstance(message, dict):
            continue
        if message.get("role") == "user":
            prompt = _prompt_text(message.get("content"))
            if prompt is not None:
                card = card_of(prompt)
        elif message.get("role") == "assistant" and isinstance(message.get("usage"), dict):
            usage = message["usage"]
            tokens = Tokens(
                _int(usage, "input"),
                _int(usage, "output"),
                _int(usage, "cacheRead"),
                _int(usage, "cacheWrite"),
            )
            model = str(message.get("model") or "unknown")
            turns.append(Turn(_when(entry), model, tokens, card))
    state.update(card=card)
    return FileRead(path, turns, FileMark(offset, state))


def _codex_counts(usage: object) -> list[int] | None:
    """input (cached included), cached input, cache-write input, output."""
    if not isinstance(usage, dict):
        return None
    names = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens")
    return [_int(usage, name) for name in names]


def _codex_tokens(delta: list[int]) -> Tokens:
    given, cached, written, output = delta
    return Tokens(max(given - cached - written, 0), output, cached, written)


def _codex_prompt(entry: dict[str, Any]) -> str | None:
    """A user message that is a prompt: Codex's own injected context items are not."""
    text = codex_user_text(entry)
    if text is None or (text.lstrip().startswith("<") and card_of(text) is None):
        return None
    return text


def _int(usage: dict[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and value > 0 else 0


def _when(entry: dict[str, Any]) -> datetime:
    text = str(entry.get("timestamp") or "")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
