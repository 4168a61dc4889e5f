"""Codex's readiness before its first prompt, read from its own log database.

The rows are the shape Codex 0.171 writes to ``$CODEX_HOME/logs_2.sqlite`` (the
``logs`` table, ``ts`` in epoch seconds; the bodies as logged, shortened).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from workers.evidence import STARTING, codex_status, codex_thread_started

THREAD_STARTED = (
    'app_server.request{rpc.method="thread/start" app_server.client_name="codex-tui"'
    ' app_server.client_version="0.171.0"}:app_server.thread_start.notify_started:'
    " app-server event: thread/started targeted_connections=0"
)


def write_logs(home: Path, rows: list[tuple[int, str]]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(home / "logs_2.sqlite") as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " ts INTEGER NOT NULL, ts_nanos INTEGER NOT NULL, level TEXT NOT NULL,"
            " target TEXT NOT NULL, feedback_log_body TEXT)"
        )
        con.executemany(
            "INSERT INTO logs (ts, ts_nanos, level, target, feedback_log_body)"
            " VALUES (?, 0, 'TRACE', 'codex_app_server::outgoing_message', ?)",
            rows,
        )


def test_starting_until_the_tuis_thread_started_then_ok(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    started = time.time()
    assert codex_status(home, started) == (STARTING, None)  # no log database yet
    # the control socket and other clients' threads are no readiness of this TUI
    (home / "app-server-control").mkdir(parents=True)
    (home / "app-server-control" / "app-server-control.sock").touch()
    other = THREAD_STARTED.replace("codex-tui", "codex-exec")
    write_logs(home, [(int(started), other), (int(started) - 60, THREAD_STARTED)])
    assert codex_status(home, started) == (STARTING, None)
    assert not codex_thread_started(home, started)
    write_logs(home, [(int(started) + 1, THREAD_STARTED)])
    assert codex_thread_started(home, started)
    assert codex_status(home, started) == ("ok", None)


def test_an_unreadable_log_database_is_still_starting(tmp_path: Path) -> None:
    home = tmp_path / "codex"
    home.mkdir()
    (home / "logs_2.sqlite").write_bytes(b"not a database")
    assert codex_status(home, time.time()) == (STARTING, None)
