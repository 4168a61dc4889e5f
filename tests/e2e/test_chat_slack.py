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
        asked: dict[str, str] = {}

        def ask(user: str, text: str) -> str:
            ts = slack.say(CHANNEL, user, text)
            asked[ts] = text
            return ts

        def state_of(ts: str) -> ChatState | None:
            found = [r for r in store.chat_list() if r.event_id == f"{CHANNEL}:{ts}"]
            return found[0].state if found else None

        turn = scaled(30)
        with explained(settings, store, log):
            with connector(settings, log, TOKENS) as proc:
                wait_until(
                    lambda: alive(proc) and slack.state.connections >= 1,
                    scaled(30), what="the connector's Socket Mode connection",
                )  # fmt: skip
                ask(MALLORY, "mallory: delete everything")
                first = ask(ALICE, "what is the plan?")
                second = ask(ALICE, "and the second question")  # into the busy turn
                wait_until(
                    lambda: state_of(second) == ChatState.QUEUED
                    and state_of(first) == ChatState.DELIVERED,
                    turn, what="the second message queued behind the first turn",
                )  # fmt: skip
                wait_until(lambda: replies_to(slack, second), 2 * turn, what="the second reply")
                slack.drop_connections()  # Slack refreshes connections: the SDK reconnects
                wait_until(
                    lambda: alive(proc) and slack.state.connections >= 2,
                    turn, what="the connector's reconnection",
                )  # fmt: skip
                # Killed mid-turn: a delivered message and one sent while down.
                third = ask(ALICE, "third, across a restart")
                wait_until(
                    lambda: alive(proc) and state_of(third) == ChatState.DELIVERED,
                    turn, what="third delivered",
                )  # fmt: skip
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # Sent while down: Slack gives up retrying the fourth (read from history after
            # the restart); the fifth's envelope is still retried (redelivered).
            fourth = ask(ALICE, "fourth, sent while the connector was down")
            slack.forget_pending()
            fifth = ask(ALICE, "fifth, sent while the connector was down")
            wait_until(
                lambda: any(asked[third] in r["text"] for r in stub_records(settings, "reply")),
                turn, what="the third turn's reply recorded while the connector was down",
            )  # fmt: skip
            with connector(settings, log, TOKENS) as again:
                wait_until(
                    lambda: alive(again) and replies_to(slack, fourth) and replies_to(slack, fifth),
                    3 * turn, what="the fourth and fifth replies after the restart",
                )  # fmt: skip
                time.sleep(scaled(2))  # a duplicate would come now, if at all
                wait_until(lambda: not slack.pending(), turn, what="every envelope acked")

        for ts in (first, second, third, fourth, fifth):
            got = replies_to(slack, ts)
            assert len(got) == 1, f"{asked[ts]!r}: {len(got)} replies"
            assert got[0]["text"] == f"orch heard: {asked[ts]}"
            assert got[0]["metadata"]["event_type"] == "fleet_reply"
        assert len(slack.bot_messages(CHANNEL)) == 5
        assert all(r.state == ChatState.ANSWERED for r in store.chat_list())
        typed = [r["text"] for r in stub_records(settings, "message")]
        for ts in (first, second, third, fourth, fifth):
            assert sum(asked[ts] in t for t in typed) == 1
        assert not any("mallory" in t for t in typed)
        text = log.read_text()
        assert f"refused a slack message from {MALLORY} in {CHANNEL}" in text
        assert BOT_TOKEN not in text and APP_TOKEN not in text
        first_reply = next(
            r["t"] for r in stub_records(settings, "reply") if asked[first] in r["text"]
        )
        second_typed = next(
            r["t"] for r in stub_records(settings, "message") if asked[second] in r["text"]
        )
        assert first_reply < second_typed
        store.close()
