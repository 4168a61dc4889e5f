"""Fixtures shared by every suite: a private FLEET_HOME, real servers."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue.settings import Settings
from tests.support import timing
from tests.support.burn import burn_count, burning
from tests.support.servers import PostgresServer, RedisServer, postgres_server, redis_server

E2E_FOLDERS = {"e2e", "multihost"}
"""Every test in these folders starts Celery worker/beat processes, Flower or netns hosts."""
E2E_MARKERS = {"runtime", "netns"}
"""A real agent CLI or network namespaces: end to end wherever the test lives."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tier ``e2e`` by folder and marker, so ``-m "not e2e"`` is the fast tier
    and a new file in tests/e2e cannot slip into it by forgetting its mark."""
    tests_root = Path(__file__).parent
    for item in items:
        folder = (
            item.path.relative_to(tests_root).parts[0]
            if item.path.is_relative_to(tests_root)
            else ""
        )
        marks = {mark.name for mark in item.iter_markers()}
        if folder in E2E_FOLDERS or marks & E2E_MARKERS:
            item.add_marker(pytest.mark.e2e)


BURN = pytest.StashKey[int]()
_burners: list[contextlib.ExitStack] = []


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[BURN] = burn_count(os.environ.get("FLEET_TEST_BURN"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_sessionstart(session: pytest.Session) -> None:
    """``FLEET_TEST_BURN=N``: N CPU-burning processes from the session's start to its end,
    so the slowness measured for the first test already sees them."""
    stack = contextlib.ExitStack()
    stack.enter_context(burning(session.config.stash[BURN]))
    _burners.append(stack)


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _burners:
        _burners.pop().close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """An e2e test's timeout is scaled like its leases and waits: the pytest-timeout
    marker (or the ini default) times ``slowness``, set before pytest-timeout reads it."""
    if item.get_closest_marker("e2e") is not None:
        marker = item.get_closest_marker("timeout")
        base = (
            float(marker.args[0])
            if marker and marker.args
            else float(item.config.getini("timeout") or 0)
        )
        if base > 0:
            item.add_marker(pytest.mark.timeout(base * timing.slowness()), append=False)
    yield


@pytest.fixture(scope="session")
def slowness() -> float:
    """How much slower than a quiet machine this one is now (≥ 1): scales e2e leases
    and waits (``tests/support/timing.py``); measured once, beside any burners."""
    return timing.slowness()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if timing.measure.cache_info().currsize:
        figures = ", ".join(f"{k}={v}" for k, v in timing.measure().items())
        burn = os.environ.get("FLEET_TEST_BURN") or "0"
        terminalreporter.write_line(f"fleet test timing: {figures}, burn={burn}")


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
    # No host worker runs with these settings to type a new pane's brief: without this,
    # every agent started here would read ``briefing`` instead of ``available``.
    value = Settings(
        home=fleet_home,
        tmux_socket=f"fq{uuid.uuid4().hex[:10]}",
        host="testhost",
        brief_at_start=False,
    )
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
