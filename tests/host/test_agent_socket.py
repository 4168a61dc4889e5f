"""The agent socket, served in this process against a real store, called by real
``fleet`` processes in real tmux panes: an agent closes its own card through it (without
loading the store), prints what the full command prints, and cannot close another
agent's card; a process outside every pane is sent the full way."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet_queue.cards import EventKind, NewCard
from fleet_queue.context import FleetContext
from fleet_queue.errors import StaleTokenError
from fleet_queue.fast_close import ask, socket_path
from fleet_queue.roster import write_roster
from fleet_queue.settings import Settings
from tests.host.conftest import make_roster, stub
from tests.support.poll import wait_until
from workers.agent_socket import AgentSocketServer, start_agent_socket
from workers.tmux import TmuxServer

PROBE = """
import json, os, sys
sys.argv = ["fleet", *sys.argv[1:]]
from fleet_queue.cli import main
try:
    main()
finally:
    with open(os.environ["PROBE_MODULES"], "w") as out:
        json.dump(sorted({m.split(".")[0] for m in sys.modules}), out)
"""

STORE_MODULES = {"sqlalchemy", "pydantic", "pydantic_settings", "typer", "click", "redis"}


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    modules: set[str]


@dataclass
class Host:
    settings: Settings
    ctx: FleetContext
    server: AgentSocketServer
    tmux: TmuxServer
    work: Path
    runs: int = 0

    def claim(self, card_id: str, agent: str) -> int:
        store = self.ctx.store
        store.create(NewCard(id=card_id, title=f"work for {agent}"))
        claim = store.claim(agent, None, self.settings.host, 600, card_id=card_id)
        assert claim is not None
        return claim.token

    def fleet(self, *args: str, pane: str | None = None) -> Run:
        """``fleet ARGS`` in a new window of agent ``pane``'s session, or in this test's
        own process tree (outside every pane) when ``pane`` is None."""
        self.runs += 1
        out = self.work / f"run{self.runs}"
        env = {"FLEET_HOME": str(self.settings.home), "PROBE_MODULES": f"{out}.modules"}
        argv = [sys.executable, "-c", PROBE, *args]
        if pane is None:
            proc = subprocess.run(
                argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
            )
            return Run(proc.returncode, proc.stdout, proc.stderr, _modules(out))
        script = f"{shlex.join(argv)} >{out}.out 2>{out}.err; echo $? >{out}.rc"
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        if not self.tmux.has_session(pane):
            self.tmux.run("new-session", "-d", "-s", pane, "sleep", "600")
        self.tmux.run("new-window", "-d", "-t", f"={pane}:", *env_args, "sh", "-c", script)
        rc = Path(f"{out}.rc")
        wait_until(lambda: rc.exists() and rc.read_text().strip() != "", 120, what="the pane's run")
        return Run(
            int(rc.read_text()),
            Path(f"{out}.out").read_text(),
            Path(f"{out}.err").read_text(),
            _modules(out),
        )


def _modules(out: Path) -> set[str]:
    return set(json.loads(Path(f"{out}.modules").read_text()))


@pytest.fixture
def host(host_settings: Settings, tmp_path: Path) -> Iterator[Host]:
    settings = host_settings.model_copy(update={"nudge": False})  # no broker in this tier
    assert str(settings.home) == os.environ["FLEET_HOME"]
    write_roster(make_roster(stub("a0"), stub("a1")), settings.effective_roster_path)
    ctx = FleetContext(settings)
    server = start_agent_socket(ctx)
    assert server is not None
    tmux = TmuxServer.for_fleet(settings, ctx.roster)
    tmux.ensure_started()
    work = tmp_path / "runs"
    work.mkdir()
    try:
        yield Host(settings, ctx, server, tmux, work)
    finally:
        server.stop()
        ctx.dispose()


def test_an_agent_closes_its_card_through_the_socket_as_the_full_command_prints_it(
    host: Host,
) -> None:
    token = host.claim("k1", "a0")
    args = ("card", "done", "k1", "--token", str(token), "--result", "shipped", "--json")
    in_pane = host.fleet(*args, pane="a0")
    assert in_pane.code == 0, in_pane.stderr
    assert not in_pane.modules & STORE_MODULES  # the store was never opened by the agent
    card = host.ctx.store.get("k1")
    assert (card.status, card.result) == ("done", "shipped")
    kinds = [e.kind for e in host.ctx.store.events(card_id="k1")]
    assert kinds.count(EventKind.DONE) == 1
    # the operator's shell is in no pane: refused on the socket, the full command runs,
    # and a repeated done under the same token prints the very same card
    outside = host.fleet(*args)
    assert "sqlalchemy" in outside.modules
    assert (outside.code, outside.stdout, outside.stderr) == (0, in_pane.stdout, "")
    assert json.loads(in_pane.stdout)["id"] == "k1"

    plain = host.fleet("card", "done", "k1", "-t", str(token), pane="a0")
    assert (plain.code, plain.stdout, plain.stderr) == (0, "k1: done\n", "")


def test_fail_and_refusals_print_and_exit_as_the_full_command(host: Host) -> None:
    token = host.claim("k2", "a0")
    failed = host.fleet("card", "fail", "k2", "--token", str(token), "-r", "no disk", pane="a0")
    assert (failed.code, failed.stdout, failed.stderr) == (0, "k2: failed: no disk\n", "")
    assert not failed.modules & STORE_MODULES
    assert host.ctx.store.get("k2").status == "failed"

    for args in (
        ("card", "fail", "k2", "--token", str(token), "--reason", "again"),  # no longer claimed
        ("card", "done", "k2", "--token", str(token + 7)),  # stale token
        ("card", "done", "nope", "--token", "1"),  # no such card
    ):
        in_pane, outside = host.fleet(*args, pane="a0"), host.fleet(*args)
        assert in_pane.code in (3, 4), in_pane
        assert (in_pane.code, in_pane.stdout, in_pane.stderr) == (
            outside.code,
            outside.stdout,
            outside.stderr,
        )
        assert in_pane.stderr.startswith("fleet: ") and in_pane.stderr.count("\n") == 1
        assert "sqlalchemy" not in in_pane.modules and "sqlalchemy" in outside.modules


def test_an_agent_cannot_close_another_agents_card(host: Host) -> None:
    token = host.claim("k3", "a1")
    refused = host.fleet("card", "done", "k3", "--token", str(token), pane="a0")
    assert refused.code == 4
    assert refused.stdout == ""
    assert refused.stderr == (
        "fleet: card 'k3' is not held by agent 'a0'; an agent may complete only its own cards\n"
    )
    card = host.ctx.store.get("k3")
    assert (card.status, card.lease_owner, card.token) == ("claimed", "a1", token)

    # its holder can; and so can the operator, outside every pane, with fleet.env
    done = host.fleet("card", "done", "k3", "--token", str(token), pane="a1")
    assert (done.code, done.stdout) == (0, "k3: done\n")


def test_a_process_outside_the_panes_is_told_to_take_the_full_path(host: Host) -> None:
    token = host.claim("k4", "a0")
    request = {"op": "done", "card": "k4", "token": token, "result": None}
    assert ask(socket_path(), request) is None  # refused: the fast path gives way
    import socket as sockets

    with sockets.socket(sockets.AF_UNIX) as conn:
        conn.connect(socket_path())
        conn.sendall(json.dumps(request).encode() + b"\n")
        answer = json.loads(conn.makefile("rb").readline())
    assert answer["fallback"] is True and answer["ok"] is False
    assert host.ctx.store.get("k4").status == "claimed"  # nothing changed


def test_the_socket_is_private_and_a_dead_workers_socket_is_replaced(host: Host) -> None:
    path = Path(socket_path())
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    assert (path.stat().st_mode & 0o077) == 0
    host.server.stop()
    assert not path.exists()
    # a worker killed with SIGKILL leaves its socket file behind: nobody answers on it
    import socket as sockets

    stale = sockets.socket(sockets.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    again = start_agent_socket(host.ctx)
    assert again is not None
    host.server = again
    assert start_agent_socket(host.ctx) is None  # a live one is left to serve


def test_the_store_checks_the_owner_in_its_fenced_write(host: Host) -> None:
    """The socket reads the card's owner before it writes; a lease that moves to another
    agent in between is still refused, by the write itself, under the right token."""
    store = host.ctx.store
    token = host.claim("k5", "a1")
    with pytest.raises(StaleTokenError, match="leased to a1, not a0"):
        store.complete("k5", token, None, owner="a0")
    with pytest.raises(StaleTokenError, match="leased to a1, not a0"):
        store.fail("k5", token, "not mine", owner="a0")
    assert store.get("k5").status == "claimed"
    done = store.complete("k5", token, None, owner="a1")
    assert store.complete("k5", token, None, owner="a1") == done  # the repeat stays a no-op
    with pytest.raises(StaleTokenError):
        store.complete("k5", token, None, owner="a0")
