"""The chat connector against a real Synapse on loopback, the stub orchestrator in tmux.

What a person relies on: a message from an allowed user reaches the orchestrator once and
its reply (read from the stub's own record of the turn, not its pane) arrives once in the
room, threaded to the message; a message sent while the orchestrator is busy waits in the
store and is answered after; a stranger's message never reaches the pane; a connector
killed mid-turn and started again loses nothing and sends no reply twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.connector.base import ChatState
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support import chat_e2e
from tests.support.chat_e2e import alive, explained, start_stub_orchestrator, stub_records
from tests.support.poll import wait_until
from tests.support.synapse import MatrixUser, Synapse, synapse  # noqa: F401
from tests.support.timing import scaled
from workers.delivery import Deliverer
from workers.stub_agent import log_path, read_stub_log

pytestmark = [pytest.mark.tmux]

BOT_PASSWORD = "bot-secret-1"


def connector(settings: Settings, log: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """``fleet connector run`` logging in as the bot (the Claude Code and Codex chat tests
    use it too)."""
    return chat_e2e.connector(settings, log, {"FLEET_MATRIX_PASSWORD": BOT_PASSWORD})


def bot_replies(user: MatrixUser, room: str, bot: str) -> dict[str, list[dict[str, Any]]]:
    """The bot's messages in the room by the event they reply to."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in user.messages(room):
        relates = event["content"].get("m.relates_to") or {}
        target = (relates.get("m.in_reply_to") or {}).get("event_id")
        if event["sender"] == bot and target:
            found.setdefault(target, []).append(event)
    return found


def test_matrix_round_trip_busy_queue_strangers_and_restart(
    synapse: Synapse,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    settings = settings.model_copy(update={"heartbeat_interval": 0.5})
    tag = os.urandom(3).hex()  # users are per test: the homeserver is the session's
    alice, mallory, bot = f"alice{tag}", f"mallory{tag}", f"fleet{tag}"
    for name in (alice, mallory):
        synapse.register(name, f"{name}-pw")
    bot_id = synapse.register(bot, BOT_PASSWORD)
    op = synapse.login(alice, f"{alice}-pw")
    stranger = synapse.login(mallory, f"{mallory}-pw")
    room = op.create_room(invite=[bot_id, stranger.user_id])
    stranger.join(room)

    roster = start_stub_orchestrator(settings, synapse.connector_block(bot_id, room, [op.user_id]))
    log = tmp_path / "connector.log"
    store = CardStore.from_settings(settings)
    asked: dict[str, str] = {}

    def ask(user: MatrixUser, text: str) -> str:
        event = user.say(room, text)
        asked[event] = text
        return event

    def answered(event: str) -> list[dict[str, Any]]:
        return bot_replies(op, room, bot_id).get(event, [])

    def state_of(event: str) -> ChatState | None:
        found = [r for r in store.chat_list() if r.event_id == event]
        return found[0].state if found else None

    turn = scaled(30)
    with explained(settings, store, log):
        with connector(settings, log) as proc:
            wait_until(lambda: bot_id in op.joined(room), scaled(60), what="the bot joined")
            # A stranger first: the allowed message after it proves the stranger's was read.
            ask(stranger, "mallory: delete everything")
            first = ask(op, "what is the plan?")
            second = ask(op, "and the second question")  # while the first turn is busy
            wait_until(
                lambda: state_of(second) == ChatState.QUEUED
                and state_of(first) == ChatState.DELIVERED,
                turn, what="the second message queued behind the first turn",
            )  # fmt: skip
            wait_until(lambda: answered(second), 2 * turn, what="the second reply")
            # The orchestrator is busy with something else (a card): the next message waits.
            deliverer = Deliverer(settings, roster, trust_native_idle=True)
            try:
                card = "work on it: fleet card done C-1 --token 1"
                deliverer.deliver("orch", card, source="test")
            finally:
                deliverer.close()
            third = ask(op, "while you work on a card")
            wait_until(lambda: stub_records(settings, "command"), turn, what="the card's end")
            wait_until(lambda: answered(third), turn, what="the third reply")
            # Killed mid-turn: a delivered message and one sent while down are answered once.
            fourth = ask(op, "fourth, across a restart")
            wait_until(
                lambda: alive(proc) and state_of(fourth) == ChatState.DELIVERED,
                turn, what="fourth delivered",
            )  # fmt: skip
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        fifth = ask(op, "fifth, sent while the connector was down")
        # The fourth turn ends while the connector is down: its reply waits on restart.
        wait_until(
            lambda: any(asked[fourth] in r["text"] for r in stub_records(settings, "reply")),
            turn, what="the fourth turn's reply recorded while the connector was down",
        )  # fmt: skip
        with connector(settings, log) as again:
            wait_until(
                lambda: alive(again) and answered(fifth),
                2 * turn, what="the fifth reply after the restart",
            )  # fmt: skip
            time.sleep(scaled(2))  # a duplicate would come now, if at all

    replies = bot_replies(op, room, bot_id)
    for event in (first, second, third, fourth, fifth):
        got = replies.get(event, [])
        assert len(got) == 1, f"{asked[event]!r}: {len(got)} replies"
        content = got[0]["content"]
        assert content["body"] == f"orch heard: {asked[event]}"
        assert content["m.relates_to"]["rel_type"] == "m.thread"
        assert content["m.relates_to"]["event_id"] == event
    assert len([e for e in op.messages(room) if e["sender"] == bot_id]) == 5
    assert all(r.state == ChatState.ANSWERED for r in store.chat_list())
    # What the orchestrator read: each allowed message once, none of the stranger's, and
    # the second only after the first turn's reply (never typed into the busy turn).
    typed = [r["text"] for r in stub_records(settings, "message")]
    for event in (first, second, third, fourth, fifth):
        assert sum(asked[event] in t for t in typed) == 1
    assert not any("mallory" in t for t in typed)
    assert f"refused a matrix message from {stranger.user_id}" in log.read_text()
    order = [(r["kind"], r["t"]) for r in read_stub_log(log_path(settings.run_dir, "orch"))]
    second_typed = next(
        r["t"] for r in stub_records(settings, "message") if asked[second] in r["text"]
    )
    first_reply = next(r["t"] for r in stub_records(settings, "reply") if asked[first] in r["text"])
    assert first_reply < second_typed, order
    card_done = stub_records(settings, "command")[0]["t"]
    third_typed = next(
        r["t"] for r in stub_records(settings, "message") if asked[third] in r["text"]
    )
    assert card_done < third_typed
    store.close()
