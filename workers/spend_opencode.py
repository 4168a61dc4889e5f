"""Read what opencode recorded it used: the assistant messages in its session database.

opencode 1.18 keeps every message in ``<XDG_DATA_HOME>/opencode/opencode.db`` (SQLite,
WAL), table ``message``: ``data`` is the message as JSON; an assistant message carries
``modelID``, ``tokens`` (``input`` without the cached part, ``output``, ``reasoning``,
``cache.read``, ``cache.write``) and ``time.completed`` once its request is over, and
``parentID`` names the user message that started the turn (its text, in ``part``, names
the card). A message is written at its start and updated in place: its ``rowid`` stays.

The mark's offset is a ``rowid``: every message below it is counted or not an assistant
message. A message still running holds the mark at it, so it is counted once complete;
the ids counted above the mark are kept with it so none is counted twice. Read only: the
database is opened ``mode=ro`` and a locked or missing one reads as nothing new.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet_queue.spend.usage import FileMark, Tokens, Turn
from workers.evidence import card_of
from workers.spend_reader import FileRead

DATABASE = Path("opencode") / "opencode.db"
BATCH = 2000
"""Messages read per scan: a long backlog is read over several scans."""


def opencode_database(data_home: Path) -> Path:
    """``data_home``: the agent's ``XDG_DATA_HOME``."""
    return data_home / DATABASE


def read_opencode(db: Path, mark: FileMark | None) -> FileRead | None:
    """New completed assistant messages since the mark; None when there is nothing new."""
    start = mark.offset if mark else 0
    seen: set[str] = set(mark.state.get("counted", [])) if mark else set()
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as con:
            rows = con.execute(
                "SELECT rowid, id, data FROM message WHERE rowid >= ? ORDER BY rowid LIMIT ?",
                (start, BATCH),
            ).fetchall()
            turns, counted, offset = _turns(con, rows, seen, start)
    except sqlite3.Error:
        return None
    if not turns and offset == start:
        return None
    return FileRead(db, turns, FileMark(offset, {"counted": counted}))


def _turns(
    con: sqlite3.Connection, rows: list[Any], seen: set[str], start: int
) -> tuple[list[Turn], list[str], int]:
    """The turns of complete messages not seen, the ids to keep above the new mark, and
    the new mark: the first message still running, else past the last row."""
    turns: list[Turn] = []
    done: list[tuple[int, str]] = []
    running: int | None = None
    cards: dict[str, str | None] = {}
    last = start - 1
    for rowid, message_id, raw in rows:
        last = rowid
        data = _json(raw)
        time = data.get("time")
        if data.get("role") != "assistant" or not isinstance(time, dict):
            continue
        if not time.get("completed"):
            running = rowid if running is None else running
            continue
        done.append((rowid, message_id))
        if message_id in seen:
            continue
        parent = str(data.get("parentID") or "")
        if parent not in cards:
            cards[parent] = _card(con, parent)
        model = str(data.get("modelID") or "unknown")
        turns.append(Turn(_when(time), model, _tokens(data), cards[parent]))
    offset = running if running is not None else last + 1
    return turns, [message_id for rowid, message_id in done if rowid >= offset], offset


def _card(con: sqlite3.Connection, user_message: str) -> str | None:
    texts = [
        str(part.get("text", ""))
        for (raw,) in con.execute("SELECT data FROM part WHERE message_id = ?", (user_message,))
        if (part := _json(raw)).get("type") == "text" and not part.get("synthetic")
    ]
    return card_of("".join(texts))


def _tokens(data: dict[str, Any]) -> Tokens:
    tokens = _dict(data.get("tokens"))
    cache = _dict(tokens.get("cache"))
    output = _int(tokens, "output") + _int(tokens, "reasoning")  # reasoning is paid as output
    return Tokens(_int(tokens, "input"), output, _int(cache, "read"), _int(cache, "write"))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(values: dict[str, Any], name: str) -> int:
    value = values.get(name)
    return value if isinstance(value, int) and value > 0 else 0


def _json(raw: object) -> dict[str, Any]:
    try:
        return _dict(json.loads(str(raw)))
    except ValueError:
        return {}


def _when(time: dict[str, Any]) -> datetime:
    created = time.get("created")
    if isinstance(created, int):
        return datetime.fromtimestamp(created / 1000, UTC)
    return datetime.now(UTC)
