"""Every operator action leaves its actor in the trail: an ``operator`` event
``by <actor>: <what>`` (a message by its SHA-256 and length, never its text), or for
pause and resume their own event naming the actor. The actor is ``user@host`` from the
OS, or the agent when the command runs with the agent's ``FLEET_AGENT``."""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import subprocess
import sys

import pytest

from fleet_queue.cards import Event, NewCard
from fleet_queue.composition import open_card_store
from fleet_queue.roster import write_roster
from fleet_queue.settings import Settings
from tests.host.conftest import make_roster, stub, wait_ready
from workers.sessions import start_agents

OPERATOR = f"{getpass.getuser()}@{socket.gethostname()}"


def fleet(settings: Settings, *args: str, agent: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(
        {
            "FLEET_HOME": str(settings.home),
            "FLEET_TMUX_SOCKET": settings.tmux_socket,
            "FLEET_HOST": settings.host,
        }
    )
    if agent is not None:
        env["FLEET_AGENT"] = agent
    done = subprocess.run(
        [sys.executable, "-m", "fleet_queue", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def events(settings: Settings, kind: str = "operator") -> list[Event]:
    store = open_card_store(settings)
    try:
        return store.events(kind=kind)
    finally:
        store.close()


@pytest.fixture
def team(host_settings: Settings) -> Settings:
    write_roster(make_roster(stub("a1"), stub("a2")), host_settings.effective_roster_path)
    return host_settings


def test_a_send_records_its_actor_and_the_texts_hash_and_length_not_the_text(
    team: Settings,
) -> None:
    start_agents(team, make_roster(stub("a1"), stub("a2")), ["a1"])
    wait_ready(team, "a1")
    text = "rotate the keys tonight"
    # --force on both sends: a1 may still be redrawing (busy window) under load; the busy
    # refusal has its own tests, the audit trail is the point here
    fleet(team, "agent", "send", "a1", "-m", text, "--force")
    fleet(team, "agent", "send", "a1", "-m", "from a peer", "--force", agent="a2")
    mine, peers = events(team)
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert mine.agent == "a1" and mine.card_id is None
    assert mine.detail is not None
    assert mine.detail.startswith(f"by {OPERATOR}: typed into a1 (accepted): sha256={digest}")
    assert f"length={len(text)}" in mine.detail and text not in mine.detail
    assert peers.detail is not None and peers.detail.startswith("by a2: typed into a1")


def test_card_actions_pause_resume_and_roster_changes_each_leave_their_actor(
    team: Settings,
) -> None:
    store = open_card_store(team)
    try:
        store.create(NewCard(id="c1", title="one"))
        store.create(NewCard(id="c2", title="two"))
        store.claim("a1", "coder", team.host, 60.0, card_id="c2")
    finally:
        store.close()
    fleet(team, "backlog", "link", "c1", "c2")
    fleet(team, "backlog", "block", "c1", "-r", "waiting on legal")
    fleet(team, "backlog", "unblock", "c1")
    fleet(team, "backlog", "reclaim", "--id", "c2", agent="a1")
    fleet(team, "agent", "add", "a3", "--runtime", "stub", "--class", "coder", "--no-start")
    fleet(team, "agent", "remove", "a3")
    fleet(team, "pause", "--reason", "drill")
    fleet(team, "resume")
    trail = [(e.card_id, e.agent, e.detail) for e in events(team)]
    assert trail == [
        ("c1", None, f"by {OPERATOR}: made it depend on c2"),
        ("c1", None, f"by {OPERATOR}: blocked it: waiting on legal"),
        ("c1", None, f"by {OPERATOR}: unblocked it"),
        ("c2", None, "by a1: reclaimed it (token 1)"),
        (None, "a3", f"by {OPERATOR}: added agent a3 (runtime stub, class coder)"),
        (None, "a3", f"by {OPERATOR}: removed agent a3 from the roster"),
    ]
    assert [e.agent for e in events(team, "paused") + events(team, "resumed")] == [
        OPERATOR,
        OPERATOR,
    ]
