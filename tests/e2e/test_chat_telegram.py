"""The chat connector on Telegram: ``fleet connector run`` against the loopback Bot API
server (tests/support/telegram_api.py; no machine here reaches api.telegram.org), the
stub orchestrator in real tmux.

What a person relies on: a message from an allowed user reaches the orchestrator once
and its reply (read from the stub's own record of the turn) arrives once, as a reply to
that message; a message sent into a busy turn waits in the store; a stranger's message
never reaches the pane; a connector killed mid-turn and started again loses nothing and
sends no reply twice; the bot's token never appears in the connector's log.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.connector.base import ChatState
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.chat_e2e import (
    alive,
    connector,
    explained,
    start_stub_orchestrator,
    stub_records,
)
from tests.support.poll import wait_until
from tests.support.telegram_api import TOKEN, BotApi, telegram_api  # noqa: F401
from tests.support.timing import scaled

pytestmark = [pytest.mark.tmux]

GROUP, ALICE, MALLORY = -1001234567890, 4242, 6666


def test_telegram_round_trip_busy_queue_strangers_and_restart(
    telegram_api: BotApi,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    api = telegram_api
    api.chat(GROUP)
    settings = settings.model_copy(update={"heartbeat_interval": 0.5})
    block = {"kind": "telegram", "api_url": api.url, "rooms": {str(GROUP): {"allow": [str(ALICE)]}}}
    start_stub_orchestrator(settings, block)
    log = tmp_path / "connector.log"
    env = {"FLEET_TELEGRAM_TOKEN": TOKEN}
    store = CardStore.from_settings(settings)
    asked: dict[int, str] = {}

    def ask(user: int, text: str) -> int:
        message_id = api.say(GROUP, user, text)
        asked[message_id] = text
        return message_id

    def answers(message_id: int) -> list[dict[str, Any]]:
        return [
            m for m in api.sent(GROUP)
            if m.get("reply_to_message", {}).get("message_id") == message_id
        ]  # fmt: skip

    def state_of(message_id: int) -> ChatState | None:
        found = [r for r in store.chat_list() if r.event_id == f"{GROUP}:{message_id}"]
        return found[0].state if found else None

    turn = scaled(30)
    with explained(settings, store, log):
        with connector(settings, log, env) as proc:
            wait_until(lambda: alive(proc) and api.polls >= 1, scaled(30), what="polling")
            ask(MALLORY, "mallory: delete everything")  # read before the allowed one after it
            first = ask(ALICE, "what is the plan?")
            second = ask(ALICE, "and the second question")  # while the first turn is busy
            wait_until(
                lambda: state_of(second) == ChatState.QUEUED
                and state_of(first) == ChatState.DELIVERED,
                turn, what="the second message queued behind the first turn",
            )  # fmt: skip
            wait_until(lambda: answers(second), 2 * turn, what="the second reply")
            # Killed mid-turn: a delivered message and one sent while down are answered once.
            third = ask(ALICE, "third, across a restart")
            wait_until(
                lambda: alive(proc) and state_of(third) == ChatState.DELIVERED,
                turn, what="third delivered",
            )  # fmt: skip
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        fourth = ask(ALICE, "fourth, sent while the connector was down")
        wait_until(
            lambda: any(asked[third] in r["text"] for r in stub_records(settings, "reply")),
            turn, what="the third turn's reply recorded while the connector was down",
        )  # fmt: skip
        with connector(settings, log, env) as again:
            wait_until(
                lambda: alive(again) and answers(fourth),
                2 * turn, what="the fourth reply after the restart",
            )  # fmt: skip
            time.sleep(scaled(2))  # a duplicate would come now, if at all

    for message_id in (first, second, third, fourth):
        got = answers(message_id)
        assert len(got) == 1, f"{asked[message_id]!r}: {len(got)} replies"
        assert got[0]["text"] == f"orch heard: {asked[message_id]}"
    assert len(api.sent(GROUP)) == 4  # nothing else: no reply to the stranger, none twice
    assert all(r.state == ChatState.ANSWERED for r in store.chat_list())
    store.close()
    typed = [r["text"] for r in stub_records(settings, "message")]
    for message_id in (first, second, third, fourth):
        assert sum(asked[message_id] in t for t in typed) == 1
    assert not any("mallory" in t for t in typed)
    second_typed = next(
        r["t"] for r in stub_records(settings, "message") if asked[second] in r["text"]
    )
    first_reply = next(r["t"] for r in stub_records(settings, "reply") if asked[first] in r["text"])
    assert first_reply < second_typed  # never typed into the busy turn
    text = log.read_text()
    assert f"refused a telegram message from {MALLORY} in {GROUP}" in text
    assert TOKEN not in text and TOKEN.split(":")[1] not in text
    cursor = settings.run_dir / "chat" / "telegram.json"
    assert oct(cursor.stat().st_mode & 0o777) == "0o600"
