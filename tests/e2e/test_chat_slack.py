"""The chat connector on Slack: ``fleet connector run`` against the loopback Slack API
(tests/support/slack_api.py: the Web API and the Socket Mode WebSocket), the stub
orchestrator in real tmux.

What a person relies on: a message from an allowed user reaches the orchestrator once
and its reply (read from the stub's own record of the turn, not its pane) arrives once
in the message's thread; a message sent into a busy turn waits in the store; a
stranger's message never reaches the pane; a connector killed mid-turn and started
again loses nothing (a message Slack still retries, and one it gave up on, read from
the channel's history) and sends no reply twice; a connection Slack closes is replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.chat_e2e import ChatSide, round_trip, start_stub_orchestrator
from tests.support.poll import wait_until
from tests.support.slack_api import APP_TOKEN, BOT_TOKEN, SlackServer, slack_server
from tests.support.timing import scaled

pytestmark = [pytest.mark.tmux]

CHANNEL, ALICE, MALLORY = "C0FLEETOPS", "U0ALICE", "U0MALLORY"
TOKENS = {"FLEET_SLACK_BOT_TOKEN": BOT_TOKEN, "FLEET_SLACK_APP_TOKEN": APP_TOKEN}


def replies_to(slack: SlackServer, ts: str) -> list[dict[str, Any]]:
    return [m for m in slack.bot_messages(CHANNEL) if m.get("thread_ts") == ts]


def test_slack_round_trip_busy_queue_strangers_and_restart(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"heartbeat_interval": 0.5})
    with slack_server() as slack:
        slack.channel(CHANNEL)
        block = {"kind": "slack", "api_url": slack.api_url,
                 "rooms": {CHANNEL: {"allow": [ALICE]}}}  # fmt: skip
        start_stub_orchestrator(settings, block)
        log = tmp_path / "connector.log"
        store = CardStore.from_settings(settings)

        def reconnect(_ask: Callable[[str], str], running: Callable[[], bool]) -> list[str]:
            slack.drop_connections()  # Slack refreshes connections: the SDK reconnects
            wait_until(
                lambda: running() and slack.state.connections >= 2,
                scaled(30), what="the connector's reconnection",
            )  # fmt: skip
            return []

        def retries_given_up(ask: Callable[[str], str]) -> list[str]:
            # Slack gives up retrying the message said while down (read from history
            # after the restart); the next one's envelope is still retried (redelivered).
            slack.forget_pending()
            return [ask("fifth, sent while the connector was down")]

        side = ChatSide(
            ask=lambda allowed, text: slack.say(CHANNEL, ALICE if allowed else MALLORY, text),
            answers=lambda ts: [m["text"] for m in replies_to(slack, ts)],
            event_id=lambda ts: f"{CHANNEL}:{ts}",
            connected=lambda: slack.state.connections >= 1,
            midway=reconnect,
            while_down=retries_given_up,
        )
        asked = round_trip(settings, store, log, TOKENS, side)
        store.close()

        assert len(asked) == 6  # the stranger's and five answered, each once (round_trip)
        replies = slack.bot_messages(CHANNEL)
        assert len(replies) == 5
        assert all(m["metadata"]["event_type"] == "fleet_reply" for m in replies)
        assert not slack.pending()  # every envelope acknowledged
        text = log.read_text()
        assert f"refused a slack message from {MALLORY} in {CHANNEL}" in text
        assert BOT_TOKEN not in text and APP_TOKEN not in text
