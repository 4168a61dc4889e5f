"""The Telegram adapter: python-telegram-bot (the ``chat`` extra), long polling.

Rooms are chat ids (``"-100123…"`` for a group, the user's id for a private chat) and
senders are the user's numeric id: usernames are refused in the allow-list because a
person can drop a username and someone else can take it, an id is theirs for good. A
message's id is ``"<chat id>:<message id>"``.

The polling offset is kept in ``run/chat/telegram.json`` and moved only after a batch's
messages were handed on (stored): Telegram keeps every update not yet confirmed by a
later offset (for 24 hours), so a restart reads again what was not confirmed and the
store keeps one of each. On the very first start messages from before it are skipped.

Telegram has no idempotency key for a sent message and the Bot API cannot read a chat's
history, so a reply cannot be checked or deduplicated after the fact: if the connector
dies after Telegram accepted a reply and before the store marked it answered (a few
milliseconds), or a send times out after Telegram posted it, the reply is sent again.
The same holds for a fleet notice: its ``notice_id`` has nowhere to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fleet_queue.connector.base import (
    ChatMessage,
    ChatRecord,
    ChatRefusedError,
    ChatSecretError,
    ChatSendError,
    OnMessage,
    unless_closed,
)
from fleet_queue.connector.config import ChatConfig
from fleet_queue.connector.cursor import load_cursor, save_cursor
from fleet_queue.errors import ConfigError
from fleet_queue.settings import Settings, reveal

if TYPE_CHECKING:
    from telegram import Message, ReplyParameters, Update
    from telegram.error import RetryAfter

log = logging.getLogger(__name__)

POLL_TIMEOUT = 30
"""Seconds one getUpdates waits: Telegram answers at once when a message comes."""
RETRY_MAX = 30.0
TEXT_MAX = 4096
"""Telegram's longest message (UTF-16 code units); a longer reply goes in several."""
SEND_READ_TIMEOUT = 20.0
"""Seconds a send waits for Telegram's answer (PTB's default is 5): a reply posted but
answered late would count as failed and be sent again."""
NUMERIC = re.compile(r"-?\d+")
DEFAULT_API = "https://api.telegram.org"


def build(config: ChatConfig, settings: Settings) -> TelegramAdapter:
    """The adapter ``fleet connector run`` serves (``fleet_queue.connector.adapters``)."""
    # httpx logs each request's URL at INFO, and a Bot API URL carries the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return TelegramAdapter(config, settings.run_dir / "chat", reveal(settings.telegram_token))


def _check_ids(config: ChatConfig) -> None:
    for room, room_config in config.rooms.items():
        if not NUMERIC.fullmatch(room):
            raise ConfigError(f"roster connector.rooms: {room!r} is not a Telegram chat id")
        for who in room_config.allow:
            if not NUMERIC.fullmatch(who):
                raise ConfigError(
                    f"roster connector.rooms.{room}.allow: {who!r} is not a Telegram user id"
                    " (numbers only: a username can change hands)"
                )


def chunks(text: str) -> list[str]:
    """``text`` in pieces Telegram takes (at most ``TEXT_MAX`` UTF-16 units each)."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for char in text:
        width = 2 if ord(char) > 0xFFFF else 1
        if size + width > TEXT_MAX:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    pieces.append("".join(current))
    return pieces


class TelegramAdapter:
    network = "telegram"

    def __init__(self, config: ChatConfig, state_dir: Path, token: str | None) -> None:
        if not token:
            raise ChatSecretError("the Telegram connector needs FLEET_TELEGRAM_TOKEN")
        _check_ids(config)
        from telegram import Bot
        from telegram.request import HTTPXRequest

        root = (config.api_url or DEFAULT_API).rstrip("/")
        self.bot = Bot(
            token,
            base_url=f"{root}/bot",
            base_file_url=f"{root}/file/bot",
            request=HTTPXRequest(read_timeout=SEND_READ_TIMEOUT),
        )
        self.config = config
        self.state_path = state_dir / "telegram.json"
        self._closed = asyncio.Event()
        self._start_lock = asyncio.Lock()
        self._send_after = 0.0

    async def _start(self) -> None:
        """getMe once (PTB's ``initialize``); a refused token is a ``ConfigError``."""
        from telegram.error import InvalidToken

        async with self._start_lock:
            try:
                await self.bot.initialize()
            except InvalidToken:  # its message carries the token: not repeated here
                raise ChatSecretError("the Telegram Bot API refused FLEET_TELEGRAM_TOKEN") from None

    async def check(self) -> str:
        from telegram.error import TelegramError

        try:
            await self._start()
        except (TelegramError, OSError) as exc:
            raise ChatSendError(f"telegram: getMe failed: {exc}") from None
        me = self.bot.bot
        return f"@{me.username} (id {me.id})"

    async def run(self, on_message: OnMessage) -> None:
        from telegram.error import Conflict, RetryAfter, TelegramError

        offset = self._load_offset()
        first_start = None if offset is not None else int(time.time())
        pause, hook_off = 1.0, False
        while not self._closed.is_set():
            try:
                await self._start()
                if not hook_off:  # a webhook would refuse getUpdates (as PTB's run_polling)
                    hook_off = await self.bot.delete_webhook(drop_pending_updates=False)
                updates = await self._poll(offset or 0)
            except RetryAfter as exc:
                await self._sleep(_seconds(exc))
                continue
            except (TelegramError, OSError) as exc:
                conflict = isinstance(exc, Conflict)  # a webhook set since, or a second poller
                hook_off &= not conflict
                hint = " (another connector polls with this token?)" if conflict else ""
                log.warning("telegram getUpdates failed: %s%s; again in %.0fs", exc, hint, pause)
                await self._sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            if updates is None:
                return
            pause = 1.0
            for update in updates:
                message = update.message
                if message is not None:
                    found = self._message(message, first_start)
                    if found is not None:
                        await on_message(found)
            if updates or offset is None:
                offset = updates[-1].update_id + 1 if updates else 0
                self._save_offset(offset)

    async def _poll(self, offset: int) -> tuple[Update, ...] | None:
        """One long poll, cut short by ``close`` (then None)."""
        polling = self.bot.get_updates(
            offset=offset, timeout=POLL_TIMEOUT, allowed_updates=["message"]
        )
        return await unless_closed(polling, self._closed)

    def _message(self, message: Message, first_start: int | None) -> ChatMessage | None:
        text, sender = message.text, message.from_user
        if text is None or sender is None or text.strip() == "/start":
            return None  # not text, or a private chat's Start button
        if first_start is not None and message.date.timestamp() < first_start:
            return None  # from before the connector's first start
        chat = str(message.chat.id)
        topic = message.message_thread_id if message.is_topic_message else None
        return ChatMessage(
            network=self.network,
            room=chat,
            sender=str(sender.id),
            event_id=f"{chat}:{message.message_id}",
            text=text,
            thread_root=None if topic is None else str(topic),
        )

    async def reply(self, record: ChatRecord, text: str) -> None:
        from telegram import ReplyParameters

        asked = int(record.event_id.rpartition(":")[2])
        answer_to = ReplyParameters(message_id=asked, allow_sending_without_reply=True)
        topic = int(record.thread_root) if record.thread_root else None
        for piece in chunks(text):
            await self._send(record.room, piece, answer_to, topic)

    async def notice(self, room: str, text: str, notice_id: str) -> None:
        del notice_id  # no idempotency key in the Bot API (see the module's docstring)
        for piece in chunks(text):
            await self._send(room, piece, None, None)

    async def _send(
        self, room: str, text: str, answer_to: ReplyParameters | None, topic: int | None
    ) -> None:
        from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter, TelegramError

        if time.monotonic() < self._send_after:
            raise ChatSendError("telegram: flood control, waiting before sending again")
        try:
            await self._start()
            await self.bot.send_message(
                chat_id=int(room), text=text, reply_parameters=answer_to, message_thread_id=topic
            )
        except RetryAfter as exc:
            self._send_after = time.monotonic() + _seconds(exc)
            raise ChatSendError(f"telegram: flood control for {_seconds(exc):.0f}s") from None
        except ChatMigrated as exc:
            raise ChatRefusedError(
                f"telegram: chat {room} became {exc.new_chat_id}; put that id in the roster"
            ) from None
        except (Forbidden, BadRequest) as exc:  # kicked, blocked, no such chat or topic
            raise ChatRefusedError(f"telegram: sending to {room} refused: {exc}") from None
        except (TelegramError, OSError) as exc:
            raise ChatSendError(f"telegram: sending to {room} failed: {exc}") from None

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    def _load_offset(self) -> int | None:
        offset = load_cursor(self.state_path).get("offset")
        return offset if isinstance(offset, int) else None

    def _save_offset(self, offset: int) -> None:
        save_cursor(self.state_path, {"offset": offset})

    async def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(Exception):
            await self.bot.shutdown()


def _seconds(exc: RetryAfter) -> float:
    """How long Telegram asked us to wait (PTB 22 warns on ``retry_after`` while it moves
    from int to ``timedelta``; either is read here)."""
    from telegram.warnings import PTBDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
