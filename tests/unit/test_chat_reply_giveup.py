"""A reply the network will not take is given up, not tried forever (the service's side).

The connector service against the loopback Telegram Bot API and a real SQLite store:
a reply refused for good (the chat is gone, the bot was kicked) fails its message at
once with the network's reason; a reply failing for a passing reason (a 502) is tried
again, backing off, and sent once the network takes it, or, after
``FLEET_CHAT_REPLY_RETRY`` seconds, its message is failed, logged once each way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import time
from pathlib import Path

import pytest

from fleet_queue.connector.base import ChatMessage, ChatRecord, ChatState
from fleet_queue.connector.config import ChatConfig, RoomConfig
from fleet_queue.connector.telegram import TelegramAdapter
from fleet_queue.roster import parse_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from tests.support.telegram_api import TOKEN, BotApi, telegram_api  # noqa: F401
from tests.support.timing import scaled

GROUP, GONE, ALICE = -1001234, -1009999, 42
RETRY = 2.5
"""FLEET_CHAT_REPLY_RETRY here: tries at 0, 1 and 3 s (the pause doubles), failed at 3."""


def delivered(store: CardStore, room: int, n: int) -> ChatRecord:
    """A message whose turn's reply is recorded and not yet sent (as after a restart)."""
    message = ChatMessage("telegram", str(room), str(ALICE), f"{room}:{n}", f"question {n}")
    record = store.chat_receive(message, "orch")
    assert record is not None
    store.chat_delivered(record.id, f"turn{n}", "a" * 64)
    store.chat_reply(record.id, f"answer {n}")
    return record


def test_refused_replies_fail_at_once_and_passing_failures_are_retried_then_given_up(
    telegram_api: BotApi,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from workers.connector_service import ConnectorService

    api = telegram_api
    api.chat(GROUP)
    settings = settings.model_copy(update={"chat_reply_retry": RETRY})
    roster = parse_roster(
        {
            "preset": "minimal",
            "agents": [{"name": "orch", "runtime": "stub", "class": "orchestrator"}],
        }
    )
    rooms = {str(GROUP): RoomConfig(allow=(str(ALICE),)), str(GONE): RoomConfig()}
    config = ChatConfig(kind="telegram", api_url=api.url, rooms=rooms)
    store = CardStore.from_settings(settings)

    def state(record: ChatRecord) -> tuple[ChatState, str | None]:
        [now] = [r for r in store.chat_list() if r.id == record.id]
        return now.state, now.reason

    async def pump_until(service: ConnectorService, done: ChatRecord, limit: float) -> float:
        started = time.monotonic()
        while state(done)[0] in (ChatState.QUEUED, ChatState.DELIVERED):
            assert time.monotonic() - started < scaled(limit), f"message {done.id} still open"
            await service.pump()
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def scenario() -> None:
        bot = TelegramAdapter(config, tmp_path, TOKEN)
        service = ConnectorService(settings, roster, config, bot, store)
        service.deliverer.close()  # nothing is typed here: every reply is recorded
        try:
            gone = delivered(store, GONE, 1)
            await pump_until(service, gone, 10)
            kicked = delivered(store, GROUP, 2)
            api.fail_next("sendMessage", 403, "Forbidden: bot was kicked from the supergroup chat")
            await pump_until(service, kicked, 10)
            # A 502 twice, then Telegram takes it: sent once, answered.
            for _ in range(2):
                api.fail_next("sendMessage", 502, "Bad Gateway")
            late = delivered(store, GROUP, 3)
            await pump_until(service, late, 10)
            # A 502 on every try: failed once the retry time is over, not before.
            for _ in range(20):
                api.fail_next("sendMessage", 502, "Bad Gateway")
            down = delivered(store, GROUP, 4)
            took = await pump_until(service, down, 10 + RETRY)
            assert took >= RETRY
        finally:
            await bot.close()

    with (
        caplog.at_level(logging.INFO, logger="fleet.connector"),
        concurrent.futures.ThreadPoolExecutor(1) as pool,  # see test_matrix_adapter.py
    ):
        pool.submit(asyncio.run, scenario()).result()
    records = store.chat_list()
    store.close()
    gone, kicked, late, down = records
    assert gone.state == ChatState.FAILED and "Chat not found" in str(gone.reason)
    assert kicked.state == ChatState.FAILED and "bot was kicked" in str(kicked.reason)
    assert late.state == ChatState.ANSWERED
    assert down.state == ChatState.FAILED
    assert re.fullmatch(
        r"the reply could not be sent for \d+s: telegram: sending to \S+ failed: Bad Gateway",
        str(down.reason),
    )
    # The kicked and refused rooms were not told again; only the answer reached GROUP.
    assert [m["text"] for m in api.sent(GROUP)] == ["answer 3"]
    # Tries at 0, 1 and 3 s, then the room told of the failure: 4 of the 20 502s used.
    assert len(api.failures["sendMessage"]) == 20 - 4
    for record in (late, down):
        lines = [r.message for r in caplog.records if f"chat message {record.id} " in r.message]
        assert sum("not sent" in line for line in lines) == 1, lines
    assert sum(f"chat message {down.id} failed" in r.message for r in caplog.records) == 1
