"""Stub agents in real tmux panes close their cards through a real Celery host worker's
agent socket: the agent's own ``fleet card done`` never opens the store, an agent cannot
close another agent's card, and refusals read as the full command's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

from fleet_queue.cards import NewCard
from fleet_queue.errors import AgentBusyError
from fleet_queue.layout import agent_socket_path
from fleet_queue.settings import Settings
from tests.support.fleet import Fleet, running_fleet, stub_roster
from tests.support.poll import wait_until
from workers.delivery import Deliverer
from workers.stub_agent import log_path, read_stub_log

NO_STORE = "sqlite:////proc/fleet-no-store/fleet.db"
"""a0's pane is told of a store nobody can open: a close that took the full path fails."""


def commands(fleet: Fleet, agent: str, card: str) -> list[dict[str, Any]]:
    """The ``fleet card done|fail`` runs the stub made for ``card``, with exit code and output."""
    records = read_stub_log(log_path(fleet.settings.run_dir, agent))
    return [r for r in records if r.get("kind") == "command" and r.get("card") == card]


def tell(fleet: Fleet, agent: str, text: str) -> None:
    """Type a message into the agent's pane (the stub runs any close command it reads),
    once its pane has gone quiet after the last one."""
    deliverer = Deliverer(fleet.settings, fleet.roster)

    def typed() -> bool:
        try:
            deliverer.deliver(agent, text, source="test")
        except AgentBusyError:
            return False
        return True

    wait_until(typed, 30, what=f"{agent}'s pane to take a message")


def operator_fleet(fleet: Fleet, *args: str) -> subprocess.CompletedProcess[str]:
    """``fleet ARGS`` from this test's process tree: outside every pane, like the operator."""
    env = {**os.environ, "FLEET_HOME": str(fleet.settings.home)}
    return subprocess.run(
        [sys.executable, "-m", "fleet_queue", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_agents_close_their_own_cards_through_the_host_worker(e2e_settings: Settings) -> None:
    roster = stub_roster(
        [("a0", "implementer"), ("a1", "implementer")],
        env={"FLEET_STUB_WORK": "0.2"},
        per_agent_env={"a0": {"FLEET_DATABASE_URL": NO_STORE}, "a1": {"FLEET_STUB_MODE": "hang"}},
    )
    with running_fleet(e2e_settings, roster) as fleet:
        store = fleet.store
        worker_log = fleet.settings.home / "logs" / "worker.log"

        # a0 gets a card by the tick and closes it the way every agent does
        store.create(NewCard(id="k0", title="for a0", target_agent="a0"))
        fleet.wait_status("k0", "done")
        wait_until(lambda: commands(fleet, "a0", "k0"), 30, what="a0's close of k0 logged")
        [closed] = commands(fleet, "a0", "k0")
        assert (closed["exit_code"], closed["output"]) == (0, "k0: done\n")
        assert "agent socket: a0 done k0 token" in worker_log.read_text()

        # a1 hangs on its card; a0, told to close it, is refused and nothing changes
        store.create(NewCard(id="k1", title="for a1", target_agent="a1"))
        wait_until(lambda: fleet.deliveries_of("k1") == 1, 30, what="k1 typed to a1")
        held = store.get("k1")
        tell(fleet, "a0", f"fleet card done k1 --token {held.token}")
        wait_until(lambda: commands(fleet, "a0", "k1"), 30, what="a0's attempt on k1 logged")
        [refused] = commands(fleet, "a0", "k1")
        assert refused["exit_code"] == 4
        assert refused["output"] == (
            "fleet: card 'k1' is not held by agent 'a0'; an agent may complete only its own cards\n"
        )
        after = store.get("k1")
        assert (after.status, after.lease_owner, after.token) == ("claimed", "a1", held.token)

        # a stale token reads the same through the socket as the full command prints it
        tell(fleet, "a0", "fleet card done k0 --token 99")
        wait_until(lambda: len(commands(fleet, "a0", "k0")) == 2, 30, what="a0's stale close")
        stale = commands(fleet, "a0", "k0")[-1]
        direct = operator_fleet(fleet, "card", "done", "k0", "--token", "99")
        assert stale["exit_code"] == direct.returncode == 4
        assert stale["output"] == direct.stdout + direct.stderr
        assert direct.stderr.startswith("fleet: stale token 99 for card 'k0'")

        # the operator's shell is in no pane: refused on the socket, the full command runs
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(agent_socket_path(str(fleet.settings.home), fleet.settings.tenant))
            request = {"op": "done", "card": "k1", "token": held.token, "result": None}
            conn.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(conn.makefile("rb").readline())
        assert (answer["ok"], answer["fallback"]) == (False, True)
        assert store.get("k1").status == "claimed"
        operator = operator_fleet(fleet, "card", "done", "k1", "--token", str(held.token))
        assert (operator.returncode, operator.stdout) == (0, "k1: done\n"), operator.stderr
        assert "agent socket: pid" in worker_log.read_text()  # the refusal, as the worker saw it
