"""What every chat network's end-to-end test shares: the connector as a real subprocess
(``fleet connector run``), the stub orchestrator in real tmux under a roster with the
network's ``connector:`` block, and a failed wait that explains itself.

Each network's test brings its own server (Synapse, the loopback Bot API …) and the
environment its connector needs (the bot's secret); the rest is here, so the tests
of the four networks hold the same promises in the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet_queue.connector.base import ChatState
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


@dataclass(frozen=True)
class ChatSide:
    """How a test speaks on one network's loopback server, for ``round_trip``."""

    ask: Callable[[bool, str], str]
    """Say ``text`` in the room as the allowed person (True) or a stranger (False); the
    message's id on the network."""
    answers: Callable[[str], list[str]]
    """The bot's replies (their text) to the message with that id."""
    event_id: Callable[[str], str]
    """The store's ``event_id`` of the message with that id."""
    connected: Callable[[], bool]
    """Whether the connector is connected to the server (it reads new messages)."""
    midway: Callable[[Callable[[str], str], Callable[[], bool]], list[str]] | None = None
    """This network's own steps after the second reply, before the kill, given ``ask``
    for the allowed person and whether the connector still runs; the ids of the messages
    they asked (each must be answered once too)."""
    while_down: Callable[[Callable[[str], str]], list[str]] | None = None
    """Its own steps after the message said while the connector was down (Slack: its
    retries given up, another message still retried); the ids of messages they asked."""


def round_trip(
    settings: Settings, store: CardStore, log: Path, env: Mapping[str, str], side: ChatSide
) -> dict[str, str]:
    """The promises every network holds, with the connector as a subprocess: a stranger's
    message first (never typed), a round trip, a second message into the busy turn
    (queued, typed only after the first turn's reply), the connector killed mid-turn and a
    message sent while it was down: after a restart every message is answered exactly
    once with its turn's reply. ``side.midway`` and ``side.while_down`` add a network's
    own steps. Returns the texts asked, by message id."""
    asked: dict[str, str] = {}

    def ask(allowed: bool, text: str) -> str:
        message_id = side.ask(allowed, text)
        asked[message_id] = text
        return message_id

    def ask_allowed(text: str) -> str:
        return ask(True, text)

    def state_of(message_id: str) -> ChatState | None:
        found = [r for r in store.chat_list() if r.event_id == side.event_id(message_id)]
        return found[0].state if found else None

    turn = scaled(30)
    with explained(settings, store, log):
        with connector(settings, log, env) as proc:
            wait_until(lambda: alive(proc) and side.connected(), turn, what="the connection")
            ask(False, "mallory: delete everything")  # read before the allowed one after it
            first = ask(True, "what is the plan?")
            second = ask(True, "and the second question")  # while the first turn is busy
            wait_until(
                lambda: state_of(second) == ChatState.QUEUED
                and state_of(first) == ChatState.DELIVERED,
                turn, what="the second message queued behind the first turn",
            )  # fmt: skip
            wait_until(lambda: side.answers(second), 2 * turn, what="the second reply")
            extra = side.midway(ask_allowed, lambda: alive(proc)) if side.midway else []
            third = ask(True, "third, across a restart")
            wait_until(
                lambda: alive(proc) and state_of(third) == ChatState.DELIVERED,
                turn, what="third delivered",
            )  # fmt: skip
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        fourth = ask(True, "fourth, sent while the connector was down")
        later = side.while_down(ask_allowed) if side.while_down else []
        wait_until(
            lambda: any(asked[third] in r["text"] for r in stub_records(settings, "reply")),
            turn, what="the third turn's reply recorded while the connector was down",
        )  # fmt: skip
        with connector(settings, log, env) as again:
            wait_until(
                lambda: alive(again) and all(side.answers(m) for m in [fourth, *later]),
                (2 + len(later)) * turn, what="the replies to what was said while down",
            )  # fmt: skip
            time.sleep(scaled(2))  # a duplicate would come now, if at all

    allowed = [first, second, *extra, third, fourth, *later]
    for message_id in allowed:
        assert side.answers(message_id) == [f"{ORCH} heard: {asked[message_id]}"]
    assert all(r.state == ChatState.ANSWERED for r in store.chat_list())
    typed = stub_records(settings, "message")
    for message_id in allowed:
        assert sum(asked[message_id] in r["text"] for r in typed) == 1
    assert not any("mallory" in r["text"] for r in typed)
    second_typed = next(r["t"] for r in typed if asked[second] in r["text"])
    replies = stub_records(settings, "reply")
    first_reply = next(r["t"] for r in replies if asked[first] in r["text"])
    assert first_reply < second_typed  # never typed into the busy turn
    return asked
