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

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.chat_e2e import ChatSide, round_trip, start_stub_orchestrator
from tests.support.discord_api import DiscordAPI, discord_api

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
    store = CardStore.from_settings(settings)
    side = ChatSide(
        ask=lambda allowed, text: api.say(alice if allowed else mallory, channel, text),
        answers=lambda asked: [m["content"] for m in api.bot_replies(channel).get(asked, [])],
        event_id=lambda asked: asked,
        connected=lambda: api.connected() > 0,
    )
    # The fourth message is said while the connector is down: Discord's gateway does not
    # deliver it again, the restarted connector reads it from the channel's history.
    asked = round_trip(settings, store, log, {"FLEET_DISCORD_TOKEN": TOKEN}, side)
    store.close()

    replies = api.bot_replies(channel)
    assert sorted(replies) == sorted(m for m, text in asked.items() if "mallory" not in text)
    assert all(got[0]["type"] == 19 for got in replies.values())  # shown as replies
    bot_posts = [m for m in api.history(channel) if m["author"]["id"] == str(api.bot.id)]
    assert len(bot_posts) == 4  # nothing else: no reply to the stranger, none twice
    text = log.read_text()
    assert f"refused a discord message from {mallory.id} in {channel}" in text
    assert TOKEN not in text
    cursor = settings.run_dir / "chat" / "discord.json"
    assert oct(cursor.stat().st_mode & 0o777) == "0o600"
