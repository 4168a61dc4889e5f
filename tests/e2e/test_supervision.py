"""The host worker keeps its agents alive: a killed pane comes back (briefed, then fed),
a crash loop ends ``broken`` until ``fleet start``; through a real Celery host worker."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue.cards import EventKind, NewCard
from fleet_queue.settings import Settings
from tests.support.cli import run_fleet
from tests.support.fleet import Fleet, fleet_settings, running_fleet, stub_roster
from tests.support.poll import wait_until
from tests.support.servers import RedisServer
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RESTART_MAX = 2


@pytest.fixture
def pair(
    tmp_path: Path, broker: RedisServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Fleet]:
    # The worker reads these from its environment, like a real deployment.
    monkeypatch.setenv("FLEET_RESTART_MAX", str(RESTART_MAX))
    monkeypatch.setenv("FLEET_RESTART_WINDOW", "600")
    home_settings = fleet_settings(tmp_path / "fleet", broker.url, settings.tmux_socket)
    for key, value in {
        "FLEET_HOME": str(home_settings.home),
        "FLEET_HOST": home_settings.host,
        "FLEET_TMUX_SOCKET": home_settings.tmux_socket,
    }.items():
        monkeypatch.setenv(key, value)  # for the in-process `fleet ps|board|start`
    roster = stub_roster([("a0", "implementer"), ("a1", "implementer")])
    with running_fleet(home_settings, roster) as fleet:
        yield fleet


def pane_pid(fleet: Fleet, agent: str) -> int:
    row = next(s for s in fleet.store.agent_statuses() if s.agent == agent)
    assert row.pid is not None and row.readiness == "available", row
    return row.pid


def kill_and_wait_back(fleet: Fleet, agent: str) -> int:
    """``kill -9`` the agent's pane process; the new pid once the worker has it back."""
    old = pane_pid(fleet, agent)
    os.kill(old, signal.SIGKILL)

    def back() -> int | None:
        row = next(s for s in fleet.store.agent_statuses() if s.agent == agent)
        ok = row.readiness == "available" and row.pid not in (None, old)
        return row.pid if ok else None

    pid = wait_until(back, timeout=scaled(30), what=f"{agent} restarted and available")
    assert pid is not None
    return pid


def events(fleet: Fleet, kind: EventKind, agent: str) -> list[str]:
    return [e.detail or "" for e in fleet.store.events(kind=kind) if e.agent == agent]


def test_a_killed_pane_is_restarted_briefed_and_still_gets_its_card(pair: Fleet) -> None:
    before = len(pair.messages("a1"))
    kill_and_wait_back(pair, "a1")
    assert len(events(pair, EventKind.RESTARTED, "a1")) == 1
    pair.store.create(NewCard(id="after-kill", title="for a1", target_agent="a1"))
    pair.wait_status("after-kill", "done", timeout=scaled(30))
    assert pair.deliveries_of("after-kill") == 1
    since = pair.messages("a1")[before:]
    assert "You are a1" in since[0], f"the first text of the new pane was not its brief: {since}"
    assert "fleet card done after-kill --token" in since[1]
    assert len(since) == 2, since


def test_a_crash_loop_breaks_the_agent_until_fleet_start(pair: Fleet) -> None:
    for _ in range(RESTART_MAX):
        kill_and_wait_back(pair, "a1")
    os.kill(pane_pid(pair, "a1"), signal.SIGKILL)

    def state() -> str:
        ps = run_fleet("ps", "--json")
        assert ps.exit_code == 0, ps.stderr
        rows = json.loads(ps.stdout)["agents"]
        return str(next(r for r in rows if r["agent"] == "a1")["readiness"])

    wait_until(lambda: state() == "broken", timeout=scaled(30), what="a1 broken in fleet ps")
    assert len(events(pair, EventKind.BROKEN, "a1")) == 1
    assert len(events(pair, EventKind.RESTARTED, "a1")) == RESTART_MAX

    # A card for the broken agent waits, visibly; untargeted work goes to a0.
    pair.store.create(NewCard(id="for-a1", title="waits", target_agent="a1"))
    pair.store.create(NewCard(id="anyone", title="to a0"))
    pair.wait_status("anyone", "done", timeout=scaled(30))
    assert pair.agent_of("anyone") == ["a0"]
    board = run_fleet("board", "--json")
    card = next(
        c
        for col in json.loads(board.stdout)["columns"]
        for c in col["cards"]
        if c["id"] == "for-a1"
    )
    assert card["waits_for"] == "agent a1 is broken", card
    assert pair.status("for-a1") == "ready"

    started = run_fleet("start", "a1")
    assert started.exit_code == 0, started.stderr
    pair.wait_status("for-a1", "done", timeout=scaled(30))
    assert pair.deliveries_of("for-a1") == 1
