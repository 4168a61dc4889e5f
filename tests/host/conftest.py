"""Host-layer fixtures: a real tmux server on a unique socket per test, killed after."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.roster import Roster, parse_roster
from fleet_queue.settings import Settings
from tests.support.poll import wait_until
from workers.sidecar import stop_sidecar
from workers.stub_agent import log_path, received_messages
from workers.tmux import TmuxServer

DRAFT_PROGRAM = Path(__file__).with_name("draft_program.py")


@pytest.fixture
def host_settings(settings: Settings) -> Iterator[Settings]:
    fast = settings.model_copy(update={"heartbeat_interval": 0.3})
    yield fast
    TmuxServer.for_fleet(fast, None).kill_server()
    for pidfile in fast.run_dir.glob("*.sidecar.pid"):
        stop_sidecar(fast.run_dir, pidfile.name.removesuffix(".sidecar.pid"))


def make_roster(*agents: dict[str, Any]) -> Roster:
    return parse_roster({"preset": "minimal", "agents": list(agents)})


def stub(name: str = "a1", **extra: Any) -> dict[str, Any]:
    return {"name": name, "runtime": "stub", "class": "coder", **extra}


def draft(name: str = "d1") -> dict[str, Any]:
    return {
        "name": name,
        "runtime": "draft",
        "class": "coder",
        "command": f"{sys.executable} {DRAFT_PROGRAM}",
    }


def messages_of(settings: Settings, agent: str) -> Callable[[], list[str]]:
    return lambda: received_messages(log_path(settings.run_dir, agent))


def wait_ready(settings: Settings, agent: str, timeout: float = 15.0) -> None:
    """The stub has drawn its prompt and written its start record."""
    path = log_path(settings.run_dir, agent)
    wait_until(
        lambda: path.exists() and "start" in path.read_text(), timeout, what=f"stub {agent} started"
    )
