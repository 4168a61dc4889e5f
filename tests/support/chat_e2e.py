"""What every chat network's end-to-end test shares: the connector as a real subprocess
(``fleet connector run``), the stub orchestrator in real tmux under a roster with the
network's ``connector:`` block, and a failed wait that explains itself.

Each network's test brings its own server (Synapse, the loopback Bot API …) and the
environment its connector needs (the bot's secret); the rest is here, so the tests
of the four networks hold the same promises in the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleet_queue.roster import Roster, parse_roster, write_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.poll import wait_until
from tests.support.synapse import stop_group
from tests.support.timing import scaled
from workers.sessions import start_agents
from workers.stub_agent import log_path, read_stub_log

ORCH = "orch"
REPLY_WORK = 2.0
"""Seconds the stub orchestrator thinks before it answers: long enough to send a second
message into its busy turn."""


@contextmanager
def connector(
    settings: Settings, log: Path, env: Mapping[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """``fleet connector run`` for ``settings`` (``env``: the network's secrets), its output
    appended to ``log``; stopped (SIGTERM to its group, then KILL) on the way out."""
    full = {
        **os.environ,
        "FLEET_HOME": str(settings.home),
        "FLEET_TMUX_SOCKET": settings.tmux_socket,
        "FLEET_HOST": settings.host,
        "FLEET_HEARTBEAT_INTERVAL": str(settings.heartbeat_interval),
        **env,
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet_queue", "connector", "run"],
            env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        stop_group(proc)


def alive(proc: subprocess.Popen[bytes]) -> bool:
    """True while the connector runs: a connector that died fails the wait at once."""
    if proc.poll() is not None:
        raise AssertionError(f"the connector exited with {proc.returncode}")
    return True


def stub_records(settings: Settings, kind: str, agent: str = ORCH) -> list[dict[str, Any]]:
    """The stub agent's own log records of one kind (``message``, ``reply``, ``command`` …)."""
    return [r for r in read_stub_log(log_path(settings.run_dir, agent)) if r["kind"] == kind]


@contextmanager
def explained(settings: Settings, store: CardStore, log: Path) -> Iterator[None]:
    """A failed wait prints what the connector logged and where each message stands."""
    try:
        yield
    except AssertionError:
        print("--- connector.log ---", log.read_text(errors="replace") if log.exists() else "")
        for r in store.chat_list():
            print(f"chat {r.id} {r.state} turn={r.turn_id} text={r.text!r} reply={r.reply!r}")
        for line in read_stub_log(log_path(settings.run_dir, ORCH)):
            print("stub", line)
        raise


def start_stub_orchestrator(
    settings: Settings, connector_block: dict[str, Any], work: float = REPLY_WORK
) -> Roster:
    """A roster of one stub orchestrator (``orch``, thinking ``work`` seconds, scaled) and
    the network's ``connector:`` block, written and started in tmux; returns the roster."""
    think = str(scaled(work))
    roster = parse_roster(
        {
            "preset": "minimal",
            "agents": [
                {
                    "name": ORCH,
                    "runtime": "stub",
                    "class": "orchestrator",
                    "env": {"FLEET_STUB_REPLY_WORK": think, "FLEET_STUB_WORK": think},
                },
            ],
            "connector": connector_block,
        }
    )
    write_roster(roster, settings.effective_roster_path)
    start_agents(settings, roster, [ORCH])
    wait_until(lambda: stub_records(settings, "start"), scaled(15), what="the stub started")
    return roster
