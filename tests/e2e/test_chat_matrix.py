"""The chat connector against a real Synapse on loopback, the stub orchestrator in tmux.

What a person relies on: a message from an allowed user reaches the orchestrator once and
its reply (read from the stub's own record of the turn, not its pane) arrives once in the
room, threaded to the message; a message sent while the orchestrator is busy waits in the
store and is answered after; a stranger's message never reaches the pane; a connector
killed mid-turn and started again loses nothing and sends no reply twice.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support import chat_e2e
from tests.support.chat_e2e import ChatSide, round_trip, start_stub_orchestrator, stub_records
from tests.support.poll import wait_until
from tests.support.synapse import MatrixUser, Synapse, synapse  # noqa: F401
from tests.support.timing import scaled
from workers.delivery import Deliverer

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
    while_card: list[str] = []

    def busy_with_a_card(ask: Callable[[str], str], running: Callable[[], bool]) -> list[str]:
        """The orchestrator is busy with something else (a card): the next message waits."""
        deliverer = Deliverer(settings, roster, trust_native_idle=True)
        try:
            deliverer.deliver("orch", "work on it: fleet card done C-1 --token 1", source="test")
        finally:
            deliverer.close()
        while_card.append(ask("while you work on a card"))
        wait_until(lambda: stub_records(settings, "command"), scaled(30), what="the card's end")
        wait_until(
            lambda: running() and bot_replies(op, room, bot_id).get(while_card[0]),
            scaled(30), what="the reply to the message sent during the card",
        )  # fmt: skip
        return while_card

    side = ChatSide(
        ask=lambda allowed, text: (op if allowed else stranger).say(room, text),
        answers=lambda event: [
            e["content"]["body"] for e in bot_replies(op, room, bot_id).get(event, [])
        ],
        event_id=lambda event: event,
        connected=lambda: bot_id in op.joined(room),
        midway=busy_with_a_card,
    )
    asked = round_trip(settings, store, log, {"FLEET_MATRIX_PASSWORD": BOT_PASSWORD}, side)
    store.close()

    # Each of the five allowed messages answered once (round_trip), as a thread on it.
    replies = bot_replies(op, room, bot_id)
    assert len(asked) == 6 and len(replies) == 5
    for event, got in replies.items():
        assert event in asked
        relates = got[0]["content"]["m.relates_to"]
        assert (relates["rel_type"], relates["event_id"]) == ("m.thread", event)
    assert len([e for e in op.messages(room) if e["sender"] == bot_id]) == 5
    assert f"refused a matrix message from {stranger.user_id}" in log.read_text()
    # The message sent while the stub worked on a card was typed only after the card.
    card_done = stub_records(settings, "command")[0]["t"]
    typed = stub_records(settings, "message")
    third_typed = next(r["t"] for r in typed if asked[while_card[0]] in r["text"])
    assert card_done < third_typed
