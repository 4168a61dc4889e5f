"""The Discord adapter against Discord's API and gateway on loopback (discord.py, real).

What the connector relies on: a person's message is handed on with the channel, the
author and the message's id, the bot's own messages are not; a message said while the
connector was stopped, or while the gateway was away, is read from the channel's history
when it connects again, and nothing from before the first start; a reply is a reply to
the asking message (in its thread if it was in one), posted once even when sent again
by a restarted connector, in parts when longer than Discord allows.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import stat
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
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
from fleet_queue.connector.discord import MAX_CONTENT, DiscordAdapter, split_text
from fleet_queue.errors import ConfigError
from tests.support.discord_api import DiscordAPI, DiscordUser, discord_api
from tests.support.timing import scaled

STORED_MS = 123_456_789  # a record's created_at (the nonce's second half)


@pytest.fixture
def api() -> Iterator[DiscordAPI]:
    with discord_api() as server:
        yield server


def in_thread(scenario: Callable[[], Awaitable[None]]) -> None:
    """The scenario's event loop in a thread of its own (a browser test earlier in the
    session can leave a loop running in this one, where asyncio.run() refuses)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()  # type: ignore[arg-type]


@dataclass(frozen=True)
class Room:
    """One text channel where alice may talk, and where the bot keeps its cursor."""

    api: DiscordAPI
    channel: int
    alice: DiscordUser
    state_dir: Path

    def adapter(self, token: str | None = None) -> DiscordAdapter:
        rooms = {str(self.channel): RoomConfig(allow=(str(self.alice.id),))}
        config = ChatConfig(kind="discord", api_url=self.api.api_url, rooms=rooms)
        return DiscordAdapter(config, self.state_dir, token=token or self.api.token)

    async def connected(self) -> Running:
        """A new adapter running, its gateway session open."""
        bot = Running(self.adapter())
        await bot.until(lambda: self.api.connected(), "the gateway session")
        return bot

    async def say(self, text: str, channel: int | None = None) -> str:
        return await asyncio.to_thread(self.api.say, self.alice, channel or self.channel, text)


@pytest.fixture
def room(api: DiscordAPI, tmp_path: Path) -> Room:
    return Room(api, api.text_channel("general"), api.person("alice"), tmp_path)


def record(message: ChatMessage, id: int = 1) -> ChatRecord:
    return ChatRecord(
        id=id, network="discord", room=message.room, sender=message.sender,
        event_id=message.event_id, text=message.text, agent="orch",
        state=ChatState.DELIVERED, thread_root=message.thread_root, turn_id="n1",
        prompt_sha="a" * 64, reply=None, reason=None, created_at=STORED_MS / 1000,
        delivered_at=0.0,
        answered_at=None,
    )  # fmt: skip


class Running:
    """An adapter's ``run`` as a task, and what it handed on."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        self.adapter = adapter
        self.got: list[ChatMessage] = []
        self.task = asyncio.create_task(adapter.run(self._take))

    async def _take(self, message: ChatMessage) -> None:
        self.got.append(message)

    async def until(self, check: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while not check():
            if self.task.done():
                self.task.result()
                raise AssertionError(f"run ended before {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.got}")
            await asyncio.sleep(0.02)

    async def stop(self) -> float:
        started = time.monotonic()
        await self.adapter.close()
        await asyncio.wait_for(self.task, scaled(5))
        return time.monotonic() - started


def test_messages_are_handed_on_in_order_and_caught_up_after_a_stop(room: Room) -> None:
    api = room.api
    before = api.say(room.alice, room.channel, "said before the first start")

    async def scenario() -> None:
        bot = await room.connected()
        other = dataclasses.replace(api.person("another bot"), bot=True)
        await asyncio.to_thread(api.say, other, room.channel, "beep")  # not a person
        first = await room.say("hello")
        await bot.until(lambda: bot.got, "the first message")
        assert bot.got == [
            ChatMessage("discord", str(room.channel), str(room.alice.id), first, "hello", None)
        ]
        await bot.adapter.reply(record(bot.got[0]), "hi")  # the bot's own: not handed on
        await asyncio.sleep(0.3)
        assert len(bot.got) == 1
        assert await bot.stop() < 2.0  # close() ends run promptly

        # Said while the connector is stopped: read from the history when it starts.
        down = [await room.say(f"while down {n}") for n in range(3)]
        again = Running(room.adapter())
        await again.until(lambda: len(again.got) >= 3, "the caught-up messages")
        live = await room.say("live again")
        await again.until(lambda: len(again.got) >= 4, "the live message")
        await asyncio.sleep(0.3)  # a message handed on twice would be here by now
        assert [m.event_id for m in again.got] == [*down, live]
        await again.stop()

    in_thread(scenario)
    assert before == api.history(room.channel)[0]["id"]  # it was there; never handed on
    state = room.state_dir / "discord.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert str(room.channel) in state.read_text()


def test_what_was_said_while_the_gateway_was_away_is_caught_up(room: Room) -> None:
    """In the channel and in its threads, in the order it was said, each once."""
    thread = room.api.thread(room.channel, "plans")

    async def scenario() -> None:
        bot = await room.connected()
        before = await room.say("in the thread, before", thread)
        await bot.until(lambda: bot.got, "the live thread message")
        with room.api.gateway_down():
            await bot.until(lambda: not room.api.connected(), "the session to close")
            away = [
                await room.say("in the thread, while away", thread),
                await room.say("in the channel, while away"),
                await room.say("in the thread again", thread),
            ]
        await bot.until(lambda: len(bot.got) >= 4, "the caught-up messages", timeout=20)
        await asyncio.sleep(0.3)  # a message handed on twice would be here by now
        assert [m.event_id for m in bot.got] == [before, *away]
        rooms = {(m.room, m.thread_root) for m in bot.got}
        assert rooms == {(str(room.channel), str(thread)), (str(room.channel), None)}
        assert room.api.identified == 2
        await bot.stop()

    in_thread(scenario)


async def asked(room: Room, text: str, channel: int | None = None) -> tuple[Running, ChatRecord]:
    """A running adapter and the stored record of ``text`` said by alice."""
    bot = await room.connected()
    await room.say(text, channel)
    await bot.until(lambda: bot.got, "the message")
    return bot, record(bot.got[0])


def test_a_reply_sent_again_after_a_restart_is_posted_once(room: Room) -> None:
    long = "\n".join(f"line {n}: " + "x" * 90 for n in range(50))  # about 5000 characters

    async def scenario() -> None:
        bot, question = await asked(room, "a long answer, please")
        await bot.adapter.reply(question, long)
        await bot.stop()
        # Restarted between posting and the store's mark: the reply is sent again.
        again = Running(room.adapter())
        await again.adapter.reply(question, long)
        await again.stop()

    in_thread(scenario)
    parts = next(iter(room.api.bot_replies(room.channel).values()))
    assert "".join(p["content"] for p in parts) == long
    assert len(parts) == len(split_text(long)) == 3
    assert room.api.posts == 3


def test_a_crash_after_the_first_part_posts_only_the_rest(room: Room) -> None:
    long = "y" * (2 * MAX_CONTENT + 10)

    async def scenario() -> None:
        bot, question = await asked(room, "go")
        await bot.adapter.reply(question, long[:MAX_CONTENT])  # the crash: part one only
        await bot.adapter.reply(question, long)
        await bot.stop()

    in_thread(scenario)
    parts = next(iter(room.api.bot_replies(room.channel).values()))
    assert [len(p["content"]) for p in parts] == [MAX_CONTENT, MAX_CONTENT, 10]
    assert [p["nonce"] for p in parts] == [f"f1.{STORED_MS}.{n}" for n in range(3)]


def test_a_repeated_nonce_posts_once(room: Room) -> None:
    """The second guard, for a reply the channel's history does not show (Discord's
    ``enforce_nonce``; discord.py sets it with every nonce)."""

    async def scenario() -> None:
        bot = await room.connected()
        for _ in range(2):
            await bot.adapter._post(room.channel, "once", "fleet-7-0", None)
        await bot.stop()

    in_thread(scenario)
    assert [m["content"] for m in room.api.history(room.channel)] == ["once"]
    assert room.api.posts == 2


def test_a_notice_sent_again_under_its_id_is_posted_once(room: Room) -> None:
    """A notice's nonce is its id and part: the try again after a restart (or a lost
    answer) returns the message the first try made."""
    long = "z" * (MAX_CONTENT + 5)

    async def scenario() -> None:
        first = await room.connected()
        await first.adapter.notice(str(room.channel), long, "0123456789abcdef0123")
        await first.stop()
        again = await room.connected()
        await again.adapter.notice(str(room.channel), long, "0123456789abcdef0123")
        await again.adapter.notice(str(room.channel), "next", "ffff456789abcdef0123")
        await again.stop()

    in_thread(scenario)
    told = room.api.history(room.channel)
    assert [len(m["content"]) for m in told] == [MAX_CONTENT, 5, 4]
    assert [m["nonce"] for m in told[:2]] == ["n0123456789abcdef0123.0", "n0123456789abcdef0123.1"]
    assert room.api.posts == 5


def test_a_reply_into_a_deleted_channel_is_refused_for_good(room: Room) -> None:
    """A channel gone (404) is a ``ChatRefusedError``: the service fails the message
    instead of trying it forever."""

    async def scenario() -> None:
        bot, question = await asked(room, "still there?")
        gone = dataclasses.replace(question, room="999999999999999999", thread_root=None)
        with pytest.raises(ChatRefusedError, match="Unknown Channel"):
            await bot.adapter.reply(gone, "the answer")
        with pytest.raises(ChatRefusedError, match="Unknown Channel"):
            await bot.adapter.notice("999999999999999999", "fleet: card C-1 failed", "a" * 20)
        await bot.stop()

    in_thread(scenario)
    assert room.api.bot_replies(room.channel) == {}


def test_a_message_in_a_thread_is_answered_in_the_thread(room: Room) -> None:
    thread = room.api.thread(room.channel, "plans")

    async def scenario() -> None:
        bot, question = await asked(room, "in the thread", thread)
        assert question.room == str(room.channel)  # the channel's allow-list applies
        assert question.thread_root == str(thread)
        await bot.adapter.reply(question, "answered there")
        await bot.stop()

    in_thread(scenario)
    replies = room.api.bot_replies(thread)
    assert [p["content"] for ps in replies.values() for p in ps] == ["answered there"]
    assert room.api.bot_replies(room.channel) == {}


def test_a_store_failing_under_on_message_ends_run(room: Room) -> None:
    """The service must stop loudly, not keep a connection whose messages go nowhere."""

    async def failing(message: ChatMessage) -> None:
        raise RuntimeError("the store is gone")

    async def scenario() -> None:
        bot = room.adapter()
        running = asyncio.create_task(bot.run(failing))
        while not room.api.connected():
            await asyncio.sleep(0.02)
        await room.say("hello")
        with pytest.raises(RuntimeError, match="the store is gone"):
            await asyncio.wait_for(running, scaled(10))
        await bot.close()

    in_thread(scenario)


def test_a_reply_before_the_login_waits_and_fails_softly_once_closed(room: Room) -> None:
    async def scenario() -> None:
        bot = room.adapter()
        message = ChatMessage("discord", str(room.channel), str(room.alice.id), "1", "hi")
        sending = asyncio.create_task(bot.reply(record(message), "hi"))
        await asyncio.sleep(0.2)
        assert not sending.done()
        await bot.close()
        with pytest.raises(ChatSendError, match="closed before it logged in"):
            await sending

    in_thread(scenario)


def test_bad_configuration_is_one_line(room: Room) -> None:
    with pytest.raises(ConfigError, match="FLEET_DISCORD_TOKEN"):
        DiscordAdapter(ChatConfig(kind="discord"), room.state_dir, token=None)
    named = ChatConfig(kind="discord", rooms={"#general": RoomConfig(allow=("1",))})
    with pytest.raises(ConfigError, match="channel ids are numbers"):
        DiscordAdapter(named, room.state_dir, token="t")

    async def scenario() -> None:
        bot = room.adapter(token="wrong")
        with pytest.raises(ConfigError, match="refused the bot token"):
            await bot.run(lambda message: asyncio.sleep(0))
        await bot.close()

    in_thread(scenario)


def test_check_logs_in_once_without_the_gateway(room: Room) -> None:
    """``check --online``: GET /users/@me (discord.py's login), no gateway session."""

    async def check(token: str | None = None) -> str:
        bot = room.adapter(token)
        try:
            return await bot.check()
        finally:
            await bot.close()

    async def scenario() -> None:
        me = room.api.bot
        assert await check() == f"{me.name} (id {me.id})"
        with pytest.raises(ChatSecretError, match="refused the bot token"):
            await check("wrong")

    in_thread(scenario)
    assert room.api.connected() == 0


def test_split_text_keeps_every_character_within_the_limit() -> None:
    text = "para one\n" + "word " * 900 + "\n" + "z" * 4500
    parts = split_text(text)
    assert "".join(parts) == text
    assert all(0 < len(p) <= MAX_CONTENT for p in parts)
    assert parts[0].endswith(" ")  # cut between words, not inside one
    assert split_text("short") == ["short"]
