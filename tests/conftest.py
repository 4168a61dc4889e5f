"""Fixtures shared by every suite: a private FLEET_HOME, real servers."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue.settings import Settings
from tests.support.servers import PostgresServer, RedisServer, postgres_server, redis_server


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the operator's ~/.config or FLEET_* variables."""
    for key in list(os.environ):
        if key.startswith("FLEET_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    from fleet_queue import catalog

    catalog.use_home(None)  # a CLI call's --home must not outlive its test


@pytest.fixture
def fleet_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)  # a home as fleet-queue makes it (private)
    return home


@pytest.fixture
def settings(fleet_home: Path) -> Iterator[Settings]:
    """Settings with a socket of its own; any tmux server a test started on it is killed after."""
    value = Settings(home=fleet_home, tmux_socket=f"fq{uuid.uuid4().hex[:10]}", host="testhost")
    yield value
    from workers.tmux import TmuxServer

    with contextlib.suppress(Exception):
        TmuxServer.for_fleet(value).kill_server()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def redis_srv() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server
