"""The Telegram adapter (python-telegram-bot) against the loopback Bot API server.

What an operator relies on: messages from before the first start are not taken as new,
a message is confirmed to Telegram only after it was handed on (a crash reads it again,
the store keeps one), the offset file is private, a reply is threaded to the message
that asked (and to its forum topic), a stranger reaches nothing, a missing or refused
token is one line that does not repeat the token, and ``close`` ends a long poll at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import stat
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from fleet_queue.connector.base import ChatMessage, ChatRecord, ChatSendError, ChatState
from fleet_queue.connector.config import ChatConfig, RoomConfig
from fleet_queue.connector.telegram import TEXT_MAX, TelegramAdapter, build
from fleet_queue.errors import ConfigError
from fleet_queue.roster import parse_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.cli import run_fleet
from tests.support.telegram_api import BOT_ID, TOKEN, BotApi, telegram_api  # noqa: F401
from tests.support.timing import scaled

GROUP, ALICE, MALLORY = -1001234, 42, 666


def config(api: BotApi, **rooms: Any) -> ChatConfig:
    allow = {str(GROUP): RoomConfig(allow=(str(ALICE),))}
    return ChatConfig(kind="telegram", api_url=api.url, rooms=rooms or allow)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # A thread of its own: a browser test earlier in the session can leave an event loop
    # running in this one (see test_matrix_adapter.py).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


async def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Inbox:
    """``on_message`` that keeps what it got; ``fail_on`` text raises (a crash mid-batch)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.got: list[ChatMessage] = []
        self.fail_on = fail_on

    async def __call__(self, message: ChatMessage) -> None:
        if message.text == self.fail_on:
            raise RuntimeError("the connector died here")
        self.got.append(message)

    def texts(self) -> list[str]:
        return [m.text for m in self.got]


def record(message_id: int, *, thread: str | None = None, room: int = GROUP) -> ChatRecord:
    return ChatRecord(
        id=1, network="telegram", room=str(room), sender=str(ALICE),
        event_id=f"{room}:{message_id}", text="q", agent="orch", state=ChatState.DELIVERED,
        thread_root=thread, turn_id="n1", prompt_sha="a" * 64, reply=None, reason=None,
        created_at=0.0, delivered_at=0.0, answered_at=None,
    )  # fmt: skip


def test_history_skipped_cursor_private_and_unconfirmed_read_again(
    telegram_api: BotApi,  # noqa: F811
    tmp_path: Path,
) -> None:
    api = telegram_api
    api.chat(GROUP)
    api.webhook = "https://example.org/hook"  # set by someone earlier: getUpdates refused
    api.say(GROUP, ALICE, "old, before the first start", ago=60)
    cursor = tmp_path / "telegram.json"

    async def scenario() -> None:
        bot = TelegramAdapter(config(api), tmp_path, TOKEN)
        inbox = Inbox(fail_on="third")
        task = asyncio.create_task(bot.run(inbox))
        await until(lambda: api.polls >= 2, "the first polls")
        api.say(GROUP, ALICE, "first")
        await until(lambda: inbox.texts() == ["first"], "the first message")
        api.say(GROUP, ALICE, "second")
        await until(lambda: inbox.texts() == ["first", "second"], "the second message")
        second_offset = cursor.read_text()
        api.say(GROUP, MALLORY, "third")  # the batch whose hand-on fails: not confirmed
        with pytest.raises(RuntimeError, match="died here"):
            await task
        assert cursor.read_text() == second_offset
        await bot.close()

        again = TelegramAdapter(config(api), tmp_path, TOKEN)
        inbox = Inbox()
        task = asyncio.create_task(again.run(inbox))
        await until(lambda: inbox.texts() == ["third"], "the unconfirmed message read again")
        assert inbox.got[0].sender == str(MALLORY)  # the adapter reads all; the service refuses
        await again.close()
        await asyncio.wait_for(task, scaled(2))

    run(scenario)
    assert api.webhook == ""
    assert stat.S_IMODE(cursor.stat().st_mode) == 0o600
    assert stat.S_IMODE(cursor.parent.stat().st_mode) == 0o700


def test_message_fields_reply_threading_topics_chunks_and_notices(
    telegram_api: BotApi,  # noqa: F811
    tmp_path: Path,
) -> None:
    api = telegram_api
    api.chat(GROUP)
    forum = api.chat(-1009999, forum=True)
    rooms = {str(GROUP): RoomConfig(allow=(str(ALICE),)), str(forum): RoomConfig()}

    async def scenario() -> None:
        bot = TelegramAdapter(config(api, **rooms), tmp_path, TOKEN)
        inbox = Inbox()
        task = asyncio.create_task(bot.run(inbox))
        await until(lambda: api.polls >= 1, "the first poll")
        asked = api.say(GROUP, ALICE, "what is the plan?")
        api.say(GROUP, ALICE, "/start")  # a private chat's Start button: not a question
        in_topic = api.say(forum, ALICE, "in a topic", topic=7)
        await until(lambda: len(inbox.got) == 2, "two messages")
        first, topic = inbox.got
        assert (first.room, first.sender, first.event_id) == (
            str(GROUP), str(ALICE), f"{GROUP}:{asked}",
        )  # fmt: skip
        assert first.thread_root is None and topic.thread_root == "7"

        await bot.reply(record(asked), "the plan")
        await bot.reply(record(in_topic, thread="7", room=forum), "in the topic")
        await bot.reply(record(asked), "x" * TEXT_MAX + "tail")
        await bot.reply(record(999), "the asking message was deleted")  # still answered
        await bot.notice(str(GROUP), "card C-1 failed", "n1")
        await bot.close()
        await asyncio.wait_for(task, scaled(2))

    run(scenario)
    sent = api.sent(GROUP)
    assert [m["text"] for m in sent] == [
        "the plan", "x" * TEXT_MAX, "tail", "the asking message was deleted", "card C-1 failed",
    ]  # fmt: skip
    replied = [m.get("reply_to_message", {}).get("message_id") for m in sent]
    assert replied == [1, 1, 1, None, None]
    [in_forum] = api.sent(-1009999)
    assert in_forum["message_thread_id"] == 7
    assert in_forum["reply_to_message"]["text"] == "in a topic"


def test_strangers_refused_by_the_service_allowed_stored_once(
    telegram_api: BotApi,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from workers.connector_service import ConnectorService

    api = telegram_api
    api.chat(GROUP)
    other = api.chat(-1005555)  # a chat not in the roster: everyone refused there
    roster = parse_roster(
        {
            "preset": "minimal",
            "agents": [{"name": "orch", "runtime": "stub", "class": "orchestrator"}],
        }
    )
    store = CardStore.from_settings(settings)

    async def scenario() -> None:
        bot = TelegramAdapter(config(api), tmp_path, TOKEN)
        service = ConnectorService(settings, roster, config(api), bot, store)
        task = asyncio.create_task(bot.run(service.on_message))
        await until(lambda: api.polls >= 1, "the first poll")
        api.say(GROUP, MALLORY, "mallory: delete everything")
        api.say(other, ALICE, "alice in an unlisted chat")
        api.say(GROUP, ALICE, "alice asks")
        await until(lambda: store.chat_list(), "alice's message stored")
        await bot.close()
        await asyncio.wait_for(task, scaled(2))
        service.deliverer.close()

    with caplog.at_level(logging.WARNING, logger="fleet.connector"):
        run(scenario)
    [stored] = store.chat_list()
    store.close()
    assert (stored.text, stored.sender, stored.state) == ("alice asks", str(ALICE), "queued")
    assert stored.event_id == f"{GROUP}:2"  # message ids count per chat
    assert f"refused a telegram message from {MALLORY} in {GROUP}" in caplog.text
    assert f"refused a telegram message from {ALICE} in {other}" in caplog.text


def test_token_missing_refused_or_username_in_allow_list_is_one_line(
    telegram_api: BotApi,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    api = telegram_api
    with pytest.raises(ConfigError, match=r"^the Telegram connector needs FLEET_TELEGRAM_TOKEN$"):
        build(config(api), settings)
    with pytest.raises(ConfigError, match=r"'@alice' is not a Telegram user id"):
        TelegramAdapter(config(api, **{str(GROUP): RoomConfig(allow=("@alice",))}), tmp_path, TOKEN)
    with pytest.raises(ConfigError, match=r"'#general' is not a Telegram chat id"):
        TelegramAdapter(config(api, **{"#general": RoomConfig()}), tmp_path, TOKEN)

    wrong = "999:wrong-token"

    async def scenario() -> None:
        bot = TelegramAdapter(config(api), tmp_path, wrong)
        with pytest.raises(ConfigError) as refused:
            await bot.run(Inbox())
        assert str(refused.value) == "the Telegram Bot API refused FLEET_TELEGRAM_TOKEN"
        assert wrong not in str(refused.value)
        await bot.close()

    run(scenario)


def test_check_online_says_as_whom_or_the_refusal_and_reads_nothing(
    telegram_api: BotApi,  # noqa: F811
    fleet_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fleet connector check --online``: getMe once, one line, exit 1 when refused;
    no update is read (a message waiting stays for the connector)."""
    api = telegram_api
    api.chat(GROUP)
    api.say(GROUP, ALICE, "waiting for the connector")
    block = {"kind": "telegram", "api_url": api.url, "rooms": {str(GROUP): {"allow": [str(ALICE)]}}}
    orch = {"name": "orch", "runtime": "stub", "class": "orchestrator"}
    roster = fleet_home / "roster.yaml"
    roster.write_text(json.dumps({"preset": "minimal", "agents": [orch], "connector": block}))
    roster.chmod(0o600)
    monkeypatch.setenv("FLEET_TELEGRAM_TOKEN", TOKEN)
    ran = run_fleet("connector", "check", "--online")
    assert (ran.exit_code, ran.stdout) == (
        0, f"chat connector online: telegram as @fleet_bot (id {BOT_ID})\n",
    )  # fmt: skip
    monkeypatch.setenv("FLEET_TELEGRAM_TOKEN", "999:wrong-token")
    ran = run_fleet("connector", "check", "--online")
    assert (ran.exit_code, ran.stdout) == (
        1,
        "connector online: the Telegram Bot API refused FLEET_TELEGRAM_TOKEN;"
        " set it in FLEET_HOME/fleet.env, mode 0600 (docs/chat-telegram.md)\n",
    )
    assert api.polls == 0 and len(api.updates) == 1


def test_network_errors_retried_close_ends_a_long_poll_promptly(
    telegram_api: BotApi,  # noqa: F811
    tmp_path: Path,
) -> None:
    api = telegram_api
    api.chat(GROUP)
    api.fail_next("getUpdates", 502, "Bad Gateway")
    api.fail_next("sendMessage", 429, "Too Many Requests: retry after 5", retry_after=5)

    async def scenario() -> None:
        bot = TelegramAdapter(config(api), tmp_path, TOKEN)
        inbox = Inbox()
        task = asyncio.create_task(bot.run(inbox))
        await until(lambda: not api.failures["getUpdates"], "the first poll, refused")
        api.say(GROUP, ALICE, "after a bad gateway")
        await until(lambda: inbox.texts() == ["after a bad gateway"], "the retried poll")
        api.webhook = "https://example.org/hook"  # set while polling: the next poll is 409
        api.say(GROUP, ALICE, "before the webhook")
        await until(lambda: not api.webhook, "the webhook deleted again")
        api.say(GROUP, ALICE, "after the webhook")
        await until(lambda: len(inbox.got) == 3, "the messages around the webhook")
        with pytest.raises(ChatSendError, match="flood control"):
            await bot.reply(record(1), "too soon")
        with pytest.raises(ChatSendError, match="flood control"):
            await bot.reply(record(1), "still too soon: not even tried")
        await until(lambda: api.polls >= 4, "a long poll waiting")
        started = time.monotonic()
        await bot.close()
        await asyncio.wait_for(task, scaled(2))
        assert time.monotonic() - started < scaled(1.0)

    run(scenario)
    assert api.sent(GROUP) == []
