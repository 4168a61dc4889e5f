"""The Slack adapter against the loopback Slack API (tests/support/slack_api.py).

What the connector relies on: a person's message arrives once as a ``ChatMessage``
(room = channel, sender = user, id = channel:ts) and its envelope is acknowledged only
after ``on_message`` returned, so an adapter that died before is sent it again; bots'
posts, our own and edits are not messages; a reply lands in the message's thread, once
even when sent again by a restarted connector; a refused send is a ``ChatSendError``
(the service tries again); a bad token is one line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.connector.base import (
    ChatMessage,
    ChatRecord,
    ChatRefusedError,
    ChatSecretError,
    ChatSendError,
    ChatState,
)
from fleet_queue.connector.config import ChatConfig, RoomConfig
from fleet_queue.connector.slack import SlackAdapter
from fleet_queue.errors import ConfigError
from tests.support.slack_api import APP_TOKEN, BOT_TOKEN, PAGE, SlackServer, slack_server

CHANNEL, ALICE = "C0FLEET", "U0ALICE"
WAIT = 20.0
"""Seconds a test waits for the adapter to see something that comes within milliseconds
on an idle machine: a hung adapter still fails the test."""


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with slack_server() as server:
        server.channel(CHANNEL)
        yield server


def adapter(server: SlackServer, state_dir: Path, **tokens: str) -> SlackAdapter:
    config = ChatConfig(
        kind="slack", api_url=server.api_url, rooms={CHANNEL: RoomConfig(allow=(ALICE,))}
    )
    return SlackAdapter(
        config,
        state_dir,
        bot_token=tokens.get("bot", BOT_TOKEN),
        app_token=tokens.get("app", APP_TOKEN),
    )


def record(message: ChatMessage, chat_id: int = 1) -> ChatRecord:
    return ChatRecord(
        id=chat_id, network="slack", room=message.room, sender=message.sender,
        event_id=message.event_id, text=message.text, agent="orch", state=ChatState.DELIVERED,
        thread_root=message.thread_root, turn_id="n1", prompt_sha="a" * 64, reply=None,
        reason=None, created_at=0.0, delivered_at=0.0, answered_at=None,
    )  # fmt: skip


def in_own_loop(scenario: Callable[[], Awaitable[None]]) -> None:
    """A loop in a thread of its own: a browser test earlier in the session can leave one
    running in this thread, where asyncio.run() refuses to start."""

    async def main() -> None:
        await asyncio.wait_for(scenario(), 3 * WAIT)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result()


async def until(predicate: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Running:
    """An adapter's ``run`` as a task, collecting what it hands on."""

    def __init__(self, bot: SlackAdapter, hold: asyncio.Event | None = None) -> None:
        self.bot = bot
        self.got: list[ChatMessage] = []
        self.hold = hold
        self.task = asyncio.ensure_future(bot.run(self.on_message))

    async def on_message(self, message: ChatMessage) -> None:
        self.got.append(message)
        if self.hold is not None:
            await self.hold.wait()

    async def stop(self) -> None:
        started = time.monotonic()
        await self.bot.close()
        await asyncio.wait_for(self.task, WAIT)
        assert time.monotonic() - started < 5, "close() did not end run() promptly"


def test_a_message_arrives_once_and_is_acknowledged_only_after_it_was_handed_on(
    slack: SlackServer,
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        hold = asyncio.Event()
        first = Running(adapter(slack, tmp_path), hold)
        await until(lambda: slack.state.connections == 1, "the first connection")
        ts = slack.say(CHANNEL, ALICE, "what is the plan?")
        await until(lambda: first.got, "the message")
        assert first.got == [
            ChatMessage(network="slack", room=CHANNEL, sender=ALICE,
                        event_id=f"{CHANNEL}:{ts}", text="what is the plan?")
        ]  # fmt: skip
        await asyncio.sleep(0.3)
        assert len(slack.pending()) == 1  # not acknowledged while on_message runs
        # The adapter dies before on_message returned: Slack sends the envelope again.
        first.task.cancel()
        await first.bot.close()
        second = Running(adapter(slack, tmp_path))
        await until(lambda: not slack.pending(), "the redelivered envelope acknowledged")
        # Read again from history (the cursor had not moved) and from the redelivered
        # envelope: the same id both times, which the store keeps once.
        assert {m.event_id for m in second.got} == {f"{CHANNEL}:{ts}"}
        await second.stop()

    in_own_loop(scenario)


def test_bots_own_posts_edits_and_joins_are_not_messages_and_threads_are_kept(
    slack: SlackServer,
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        run = Running(adapter(slack, tmp_path))
        await until(lambda: slack.state.connections == 1, "the connection")
        slack.push(CHANNEL, {"type": "message", "subtype": "message_changed", "ts": "1.1",
                             "message": {"user": ALICE, "text": "edited"}})  # fmt: skip
        slack.push(CHANNEL, {"type": "message", "subtype": "channel_join", "ts": "1.2",
                             "user": ALICE, "text": "joined"})  # fmt: skip
        slack.push(CHANNEL, {"type": "message", "bot_id": "B0OTHER", "ts": "1.3",
                             "user": "U0OTHERBOT", "text": "another bot"})  # fmt: skip
        root = slack.say(CHANNEL, ALICE, "root")
        await until(lambda: len(run.got) == 1, "the root message")
        await run.bot.reply(record(run.got[0]), "our reply")  # comes back as an event
        in_thread = slack.say(CHANNEL, ALICE, "in the thread", thread_ts=root)
        await until(lambda: len(run.got) == 2, "the threaded message")
        await until(lambda: not slack.pending(), "every envelope acknowledged")
        assert [m.text for m in run.got] == ["root", "in the thread"]
        assert run.got[1].event_id == f"{CHANNEL}:{in_thread}"
        assert run.got[1].thread_root == root
        # A reply to a message in a thread joins that thread, not a new one.
        await run.bot.reply(record(run.got[1], chat_id=2), "threaded answer")
        replies = slack.bot_messages(CHANNEL)
        assert [(m["text"], m["thread_ts"]) for m in replies] == [
            ("our reply", root), ("threaded answer", root),
        ]  # fmt: skip
        assert replies[1]["metadata"] == {
            "event_type": "fleet_reply", "event_payload": {"chat_id": 2},
        }  # fmt: skip
        await run.stop()

    in_own_loop(scenario)


def test_a_reply_sent_again_by_a_restarted_connector_is_posted_once(
    slack: SlackServer,
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        first = Running(adapter(slack, tmp_path))
        await until(lambda: slack.state.connections == 1, "the connection")
        slack.say(CHANNEL, ALICE, "ask once")
        await until(lambda: first.got, "the message")
        asked = record(first.got[0], chat_id=7)
        await first.bot.reply(asked, "the answer")
        await first.stop()  # "crashed" before the store marked it answered
        second = Running(adapter(slack, tmp_path))
        await second.bot.reply(asked, "the answer")
        other = record(first.got[0], chat_id=8)  # another record in the same thread
        await second.bot.reply(other, "another answer")
        assert [m["text"] for m in slack.bot_messages(CHANNEL)] == [
            "the answer", "another answer",
        ]  # fmt: skip
        await second.stop()

    in_own_loop(scenario)


def test_a_notice_sent_again_under_its_id_is_posted_once(
    slack: SlackServer, tmp_path: Path
) -> None:
    """A restart (or a send whose answer was lost) tries the notice in flight again under
    the same id: the channel shows our notice with it, so it is not posted twice."""

    async def scenario() -> None:
        first = Running(adapter(slack, tmp_path))
        await until(lambda: slack.state.connections == 1, "the connection")
        await first.bot.notice(CHANNEL, "fleet: card C-1 failed", "a1")
        await first.stop()
        slack.say(CHANNEL, ALICE, "chatter in between")
        second = Running(adapter(slack, tmp_path))
        await until(lambda: slack.state.connections == 2, "the second connection")
        await second.bot.notice(CHANNEL, "fleet: card C-1 failed", "a1")
        await second.bot.notice(CHANNEL, "fleet: card C-2 failed", "b2")
        await second.stop()

    in_own_loop(scenario)
    told = slack.bot_messages(CHANNEL)
    assert [m["text"] for m in told] == ["fleet: card C-1 failed", "fleet: card C-2 failed"]
    assert told[0]["metadata"] == {
        "event_type": "fleet_notice",
        "event_payload": {"notice_id": "a1"},
    }


def test_our_reply_deep_in_a_long_thread_is_found_on_a_later_page(
    slack: SlackServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        run = Running(adapter(slack, tmp_path))
        await until(lambda: slack.state.connections == 1, "the connection")
        root = slack.say(CHANNEL, ALICE, "start a long thread")
        for n in range(PAGE + 10):
            slack.say(CHANNEL, ALICE, f"chatter {n}", thread_ts=root)
        await until(lambda: len(run.got) == PAGE + 11, "the thread")
        asked = record(run.got[0], chat_id=3)
        await run.bot.reply(asked, "the answer")
        await run.bot.reply(asked, "the answer")  # sent again: found past the first page
        assert [m["text"] for m in slack.bot_messages(CHANNEL)] == ["the answer"]
        pages = [a for m, a in slack.state.calls if m == "conversations.replies"]
        assert any(a.get("cursor") for a in pages)
        await run.stop()

    in_own_loop(scenario)


def test_what_was_said_while_down_is_read_from_history_when_slack_gave_up_retrying(
    slack: SlackServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        slack.say(CHANNEL, ALICE, "before the first start: history, not a message")
        first = Running(adapter(slack, tmp_path))
        await until(lambda: slack.state.connections == 1, "the connection")
        root = slack.say(CHANNEL, ALICE, "seen live")
        await until(lambda: first.got, "the live message")
        await first.bot.reply(record(first.got[0]), "answered live")
        await first.stop()
        missed = [
            slack.say(CHANNEL, ALICE, "top level while down"),
            slack.say(CHANNEL, ALICE, "in the old thread while down", thread_ts=root),
        ]
        missed.append(slack.say(CHANNEL, ALICE, "in a new thread", thread_ts=missed[0]))
        slack.forget_pending()  # Slack's retries ran out while the connector was down
        second = Running(adapter(slack, tmp_path))
        await until(lambda: len(second.got) == 3, "the three missed messages")
        assert [m.event_id for m in second.got] == [f"{CHANNEL}:{ts}" for ts in missed]
        assert [m.thread_root for m in second.got] == [None, root, missed[0]]
        after = slack.say(CHANNEL, ALICE, "live again")
        await until(lambda: len(second.got) == 4, "the live message after catching up")
        assert second.got[3].event_id == f"{CHANNEL}:{after}"
        await second.stop()
        assert oct((tmp_path / "slack.json").stat().st_mode & 0o777) == "0o600"

    in_own_loop(scenario)


def test_a_refused_send_is_a_chat_send_error_and_a_dropped_socket_reconnects(
    slack: SlackServer,
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        run = Running(adapter(slack, tmp_path))
        await until(lambda: slack.state.connections == 1, "the connection")
        slack.say(CHANNEL, ALICE, "first")
        await until(lambda: run.got, "the message")
        slack.fail_next("chat.postMessage", "ratelimited")
        with pytest.raises(ChatSendError, match="ratelimited") as passing:
            await run.bot.reply(record(run.got[0]), "too fast")
        assert not isinstance(passing.value, ChatRefusedError)  # tried again
        with pytest.raises(ChatRefusedError, match="channel_not_found"):  # failed at once
            await run.bot.reply(
                record(ChatMessage("slack", "C0GONE", ALICE, "C0GONE:1.1", "q")), "a"
            )
        with pytest.raises(ChatRefusedError, match="channel_not_found"):
            await run.bot.notice("C0GONE", "fleet paused", "n1")
        await run.bot.notice(CHANNEL, "fleet paused", "n1")
        assert [m["text"] for m in slack.bot_messages(CHANNEL)] == ["fleet paused"]
        slack.drop_connections()  # Slack refreshes connections now and then
        await until(lambda: slack.state.connections == 2, "the reconnection")
        slack.say(CHANNEL, ALICE, "after the reconnection")
        await until(lambda: len(run.got) == 2, "the message after the reconnection")
        await run.stop()

    in_own_loop(scenario)


def test_a_reply_before_the_connection_waits_and_fails_softly_once_closed(
    slack: SlackServer,
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        bot = adapter(slack, tmp_path)
        asked = ChatMessage("slack", CHANNEL, ALICE, f"{CHANNEL}:1.000001", "hi")
        sending = asyncio.ensure_future(bot.reply(record(asked), "hi"))
        await asyncio.sleep(0.2)
        assert not sending.done()
        await bot.close()
        with pytest.raises(ChatSendError, match="closed before it connected"):
            await sending

    in_own_loop(scenario)


@pytest.mark.parametrize(
    ("tokens", "line"),
    [
        ({"bot": ""}, "needs FLEET_SLACK_BOT_TOKEN"),
        ({"app": ""}, "needs FLEET_SLACK_BOT_TOKEN"),
        ({"bot": APP_TOKEN, "app": BOT_TOKEN}, "must be a bot token"),
    ],
)
def test_missing_or_swapped_tokens_are_one_line(
    slack: SlackServer, tmp_path: Path, tokens: dict[str, str], line: str
) -> None:
    with pytest.raises(ConfigError, match=line) as caught:
        adapter(slack, tmp_path, **tokens)
    assert "\n" not in caught.value.message


def test_check_authenticates_once_and_connects_to_nothing(
    slack: SlackServer, tmp_path: Path
) -> None:
    """``check --online``: auth.test and apps.connections.open, the socket not dialled."""

    async def check(**tokens: str) -> str:
        bot = adapter(slack, tmp_path, **tokens)
        try:
            return await bot.check()
        finally:
            await bot.close()

    async def scenario() -> None:
        assert await check() == "fleet (UFLEETBOT) in fleet"
        with pytest.raises(ChatSecretError, match="invalid_auth"):
            await check(app="xapp-wrong")

    in_own_loop(scenario)
    assert slack.state.connections == 0
    called = [m for m, _ in slack.state.calls]
    assert called.count("auth.test") == 2 and called.count("apps.connections.open") == 2


def test_a_token_slack_refuses_ends_run_with_one_line(slack: SlackServer, tmp_path: Path) -> None:
    async def ignore(_message: ChatMessage) -> None:
        raise AssertionError("no message comes before the connection")

    async def scenario() -> None:
        for tokens, error in (
            ({"bot": "xoxb-wrong"}, "invalid_auth"),
            ({"app": "xapp-wrong"}, "invalid_auth"),
        ):
            bot = adapter(slack, tmp_path, **tokens)
            with pytest.raises(ConfigError, match=error):
                await asyncio.wait_for(bot.run(ignore), WAIT)
            await bot.close()

    in_own_loop(scenario)
