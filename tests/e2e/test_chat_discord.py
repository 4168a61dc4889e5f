"""The chat connector on Discord: ``fleet connector run`` against Discord's API and
gateway on loopback (tests/support/discord_api.py; no machine here reaches discord.com),
the stub orchestrator in real tmux.

What a person relies on: a message from an allowed user reaches the orchestrator once
and its reply (read from the stub's own record of the turn) arrives once, as a reply to
that message; a message sent into a busy turn waits in the store; a stranger's message
never reaches the pane; a connector killed mid-turn and started again loses nothing
(Discord's gateway does not deliver again what was said while it was down: the
channel's history is read) and sends no reply twice; the bot's token is never logged.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
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
from tests.support.discord_api import DiscordAPI, DiscordUser, discord_api
from tests.support.poll import wait_until
from tests.support.timing import scaled

pytestmark = [pytest.mark.tmux]

TOKEN = "MTE5.fleet-bot.discord-token-1"


@pytest.fixture
def api() -> Iterator[DiscordAPI]:
    with discord_api(TOKEN) as server:
        yield server


def test_discord_round_trip_busy_queue_strangers_and_restart(
    api: DiscordAPI, settings: Settings, tmp_path: Path
) -> None:
    channel = api.text_channel("fleet")
    alice, mallory = api.person("alice"), api.person("mallory")
    settings = settings.model_copy(update={"heartbeat_interval": 0.5})
    start_stub_orchestrator(settings, api.connector_block(channel, [alice]))
    log = tmp_path / "connector.log"
    env = {"FLEET_DISCORD_TOKEN": TOKEN}
    store = CardStore.from_settings(settings)
    asked: dict[str, str] = {}

    def ask(who: DiscordUser, text: str) -> str:
        message_id = api.say(who, channel, text)
        asked[message_id] = text
        return message_id

    def answers(message_id: str) -> list[dict[str, Any]]:
        return api.bot_replies(channel).get(message_id, [])

    def state_of(message_id: str) -> ChatState | None:
        found = [r for r in store.chat_list() if r.event_id == message_id]
        return found[0].state if found else None

    turn = scaled(30)
    with explained(settings, store, log):
        with connector(settings, log, env) as proc:
            wait_until(lambda: alive(proc) and api.connected(), scaled(30), what="the gateway")
            ask(mallory, "mallory: delete everything")  # read before the allowed one after it
            first = ask(alice, "what is the plan?")
            second = ask(alice, "and the second question")  # while the first turn is busy
            wait_until(
                lambda: state_of(second) == ChatState.QUEUED
                and state_of(first) == ChatState.DELIVERED,
                turn, what="the second message queued behind the first turn",
            )  # fmt: skip
            wait_until(lambda: answers(second), 2 * turn, what="the second reply")
            # Killed mid-turn: a delivered message and one sent while down are answered once.
            third = ask(alice, "third, across a restart")
            wait_until(
                lambda: alive(proc) and state_of(third) == ChatState.DELIVERED,
                turn, what="third delivered",
            )  # fmt: skip
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        fourth = ask(alice, "fourth, sent while the connector was down")
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
        assert got[0]["content"] == f"orch heard: {asked[message_id]}"
        assert got[0]["type"] == 19  # a reply, shown under the message that asked
    bot_posts = [m for m in api.history(channel) if m["author"]["id"] == str(api.bot.id)]
    assert len(bot_posts) == 4  # nothing else: no reply to the stranger, none twice
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
    assert f"refused a discord message from {mallory.id} in {channel}" in text
    assert TOKEN not in text
    cursor = settings.run_dir / "chat" / "discord.json"
    assert oct(cursor.stat().st_mode & 0o777) == "0o600"
