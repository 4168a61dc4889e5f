"""``fleet card done`` — what every agent runs after every card. Through the host
worker's agent socket it loads the standard library only; the full command (the
operator's, or the fallback) loads the store and the nudge, not Celery, the host layer,
rich or the catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.cards import NewCard
from fleet_queue.fast_close import ask, parse_close, socket_path
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore

PROBE = """
import json, sys
sys.argv = ["fleet", *sys.argv[1:]]
from fleet_queue.cli import main
try:
    main()
finally:
    loaded = sorted({m.split(".")[0] for m in sys.modules})
    print(json.dumps(loaded), file=sys.stderr)
"""

NOT_ON_THE_CLOSE_PATH = {"celery", "kombu", "billiard", "workers", "rich", "yaml", "libtmux"}


def test_card_done_loads_no_celery_and_no_host_layer(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    with CardStore.from_settings(settings, on_change=lambda kind: None) as store:
        store.create(NewCard(id="a1", title="closed by an agent"))
        claim = store.claim("c0", None, settings.host, 60, card_id="a1")
    assert claim is not None
    env = {**os.environ, "FLEET_HOME": str(tmp_path)}  # no broker runs: the nudge gives up
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "card", "done", "a1", "--token", str(claim.token)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a1: done\n"
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "sqlalchemy" in loaded and "redis" in loaded  # it did reach the store and the nudge
    assert not loaded & NOT_ON_THE_CLOSE_PATH


FULL_PATH_ONLY = {"sqlalchemy", "pydantic", "pydantic_core", "pydantic_settings", "typer", "click"}
FULL_PATH_ONLY |= {"redis", "alembic", "rich", *NOT_ON_THE_CLOSE_PATH}


def test_through_the_agent_socket_card_done_loads_only_the_standard_library(
    tmp_path: Path,
) -> None:
    """The socket's peer check (which pane the caller is in) is tested with real panes in
    tests/host/test_agent_socket.py; here every caller counts as agent c0."""
    from fleet_queue.context import FleetContext
    from workers.agent_socket import start_agent_socket

    settings = Settings(home=tmp_path, nudge=False)
    ctx = FleetContext(settings)
    ctx.store.create(NewCard(id="a1", title="closed through the socket"))
    claim = ctx.store.claim("c0", None, settings.host, 60, card_id="a1")
    assert claim is not None
    server = start_agent_socket(ctx, identify=lambda pid: "c0")
    assert server is not None
    try:
        env = {**os.environ, "FLEET_HOME": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-c", PROBE, "card", "done", "a1", "--token", str(claim.token)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert ctx.store.get("a1").status == "done"
    finally:
        server.stop()
        ctx.dispose()
    assert (done.returncode, done.stdout) == (0, "a1: done\n"), done.stderr
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert not loaded & FULL_PATH_ONLY
    beyond = {m for m in loaded - set(sys.stdlib_module_names) if not m.startswith("__")}
    assert beyond <= {"fleet_queue", "_distutils_hack", "_virtualenv"}, beyond


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["card", "done", "a1", "--token", "7"],
            {"op": "done", "card": "a1", "token": 7, "json": False, "result": None},
        ),
        (
            ["card", "done", "--json", "-t", "7", "a1", "--result=it works"],
            {"op": "done", "card": "a1", "token": 7, "json": True, "result": "it works"},
        ),
        (
            ["card", "fail", "a1", "--token=3", "-r", "no disk", "--json"],
            {"op": "fail", "card": "a1", "token": 3, "json": True, "reason": "no disk"},
        ),
    ],
)
def test_the_fast_path_takes_exactly_the_agents_close(argv: list[str], expected: Any) -> None:
    assert parse_close(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["card", "done", "a1"],  # no token: Click's usage error
        ["card", "fail", "a1", "--token", "1"],  # no reason
        ["card", "done", "a1", "--token", "1", "--token", "2"],  # repeated
        ["card", "done", "a1", "--token", "x1"],
        ["card", "done", "a1", "--token", "+1"],
        ["card", "done", "a1", "--token", str(2**63)],
        ["card", "done", "a1", "-t1"],
        ["card", "done", "a1", "--token", "1", "--help"],
        ["card", "done", "a1", "b1", "--token", "1"],
        ["card", "done", "a1", "--token", "1", "--result", "--json"],
        ["card", "done", "--", "a1", "--token", "1"],
        ["card", "fail", "a1", "--token", "1", "--result", "x", "--reason", "y"],
        ["--home", "/x", "card", "done", "a1", "--token", "1"],
        ["backlog", "complete", "a1", "--token", "1"],
    ],
)
def test_anything_else_runs_the_full_command(argv: list[str]) -> None:
    assert parse_close(argv) is None


def test_no_socket_means_the_full_command(tmp_path: Path) -> None:
    assert not Path(socket_path()).exists()
    assert ask(socket_path(), {"op": "done", "card": "a1", "token": 1}) is None
