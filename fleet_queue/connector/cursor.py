"""Where an adapter keeps how far it read: one small JSON file per network, private.

Each adapter's cursor (Matrix's sync token, Telegram's update offset, Slack's and
Discord's newest message per channel, the notices' last event per room) lives in
``run/chat/<name>.json``. It is written whole, atomically and 0600
(``fleet_queue.private.write_private``) after what it covers was stored, so a crash
leaves the old cursor or the new one, never half of one. A missing, unreadable or
malformed file is no cursor: the adapter starts as on its first start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fleet_queue.private import write_private


def load_cursor(path: Path) -> dict[str, Any]:
    """The saved cursor's fields; empty when there is none to read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_cursor(path: Path, data: dict[str, Any]) -> None:
    """Replace the cursor with ``data`` (its directory made 0700 if missing)."""
    write_private(path, json.dumps(data, sort_keys=True))
