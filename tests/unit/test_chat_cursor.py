"""The one place every chat adapter keeps how far it read (``connector.cursor``).

A restart reads on from the cursor, so it must survive as written, stay private (it
names rooms and message ids), and a damaged file must mean "start as new", not a crash.
"""

from __future__ import annotations

import stat
from pathlib import Path

from fleet_queue.connector.cursor import load_cursor, save_cursor


def test_a_cursor_is_written_private_read_back_and_a_bad_file_is_no_cursor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run" / "chat" / "telegram.json"
    assert load_cursor(path) == {}  # none yet: the first start
    save_cursor(path, {"offset": 41})
    save_cursor(path, {"offset": 42})
    assert load_cursor(path) == {"offset": 42}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["telegram.json"]  # no temporary left
    for damaged in ("{not json", "[1, 2]", ""):
        path.write_text(damaged)
        assert load_cursor(path) == {}
