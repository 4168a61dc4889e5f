"""The Discord adapter: discord.py (the ``chat`` extra), a bot in guild text channels.

Discord's gateway does not deliver again what was said while the bot was away, so on
every connect (the first, and each reconnect) the adapter reads the history of each
configured channel, and of its threads active since, after the last message it handed
on there; that cursor is kept per channel (its threads included) in
``run/chat/discord.json`` (0600) and moved only after ``on_message`` returned (the
message is stored by then). On the very first start the channels' earlier history is
not taken as new messages. Gateway messages and the catch-up go through one queue, so
messages are handed on one at a time, in order; a message that comes both live and in
the catch-up is handed on once (and the service would store it once anyway).

A reply is exactly once across restarts in two ways: before posting, the channel is
read for the bot's own replies to the asking message (a reply posted just before a
crash is found and not posted again), and each post carries a ``nonce`` made of the
record (``reply_nonce``) with ``enforce_nonce`` (Discord returns the earlier message
for a repeated nonce within a few minutes). A reply longer than Discord's 2000 characters goes in
parts, each a reply to the asking message; the parts found already posted are skipped.
A fleet notice's nonce is its ``notice_id`` and part number: a notice sent again within
those minutes (a restart, a lost answer) is not posted twice.

``connector.api_url`` replaces Discord's REST base (``https://discord.com/api/v10``)
for the whole process: discord.py keeps it in a class attribute
(``discord.http.Route.BASE``); the gateway's address is then asked of that server
(``GET /gateway/bot``), as it is of Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from asyncio import FIRST_COMPLETED
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

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

log = logging.getLogger(__name__)

MAX_CONTENT = 2000
"""Discord's limit on one message's text."""
REPLY_LOOKBACK = 500
"""Messages after the asking one read for a reply already posted (before a crash)."""
RETRY_MAX = 30.0
SEEN_KEPT = 1000
"""Message ids remembered as handed on: one said during a catch-up comes both ways."""
CATCH_UP = None
"""The marker queued when the gateway (re)connects: read the channels' history first."""
SENDING_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)


def build(config: ChatConfig, settings: Settings) -> DiscordAdapter:
    """The adapter ``fleet connector run`` serves (``fleet_queue.connector.adapters``)."""
    return DiscordAdapter(config, settings.run_dir / "chat", token=reveal(settings.discord_token))


def _snowflakes(rooms: list[str]) -> list[int]:
    try:
        return [int(room) for room in rooms]
    except ValueError:
        raise ConfigError(
            "roster connector.rooms: Discord channel ids are numbers"
            " (Developer Mode, right-click the channel, Copy Channel ID)"
        ) from None


def split_text(text: str, limit: int = MAX_CONTENT) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut after a newline where one
    is near (else after a space, else anywhere); nothing lost, nothing added."""
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", limit // 2, limit)
        if cut < 0:
            cut = text.rfind(" ", limit // 2, limit)
        cut = limit if cut < 0 else cut + 1
        parts.append(text[:cut])
        text = text[cut:]
    return [*parts, text] if text or not parts else parts


def reply_nonce(record: ChatRecord, part: int) -> str:
    """The same for a record's part on every try (within Discord's 25 characters), and
    not another fleet's: its id and the millisecond it was stored."""
    return f"f{record.id}.{int(record.created_at * 1000) % 10**9}.{part}"


class DiscordAdapter:
    network = "discord"

    def __init__(
        self,
        config: ChatConfig,
        state_dir: Path,
        *,
        token: str | None,
    ) -> None:
        if not token:
            raise ChatSecretError(
                "the Discord connector needs FLEET_DISCORD_TOKEN (the bot's token)"
            )
        self.channels = _snowflakes(list(config.rooms))
        if config.api_url:
            Route.BASE = config.api_url.rstrip("/")  # per process: no per-client base
        self.config = config
        self.state_path = state_dir / "discord.json"
        self._token = token
        # No voice here: discord.py's warning that voice libraries are missing is noise.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.dm_messages = True
        intents.message_content = True
        self.client = discord.Client(intents=intents)
        self.client.event(self.on_message)
        self.client.event(self.on_connect)
        self.client.event(self.on_resumed)
        self._inbox: asyncio.Queue[discord.Message | None] = asyncio.Queue()
        self._cursor: dict[int, int] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._parents: dict[int, int] = {}
        """Threads seen, and the channel each is in (its room, its cursor)."""
        self._guilds: dict[int, int] = {}
        self._closed = asyncio.Event()
        self._ready = asyncio.Event()

    # -- the gateway's events (each its own task in discord.py: only queued here) ----------

    async def on_message(self, message: discord.Message) -> None:
        self._inbox.put_nowait(message)

    async def on_connect(self) -> None:
        self._inbox.put_nowait(CATCH_UP)

    async def on_resumed(self) -> None:
        self._inbox.put_nowait(CATCH_UP)

    # -- receiving -------------------------------------------------------------------------

    async def run(self, on_message: OnMessage) -> None:
        if not await self._login():
            return
        self._load_cursor()
        self._ready.set()
        handing = asyncio.create_task(self._hand_on(on_message))
        connecting = asyncio.create_task(self._connect())
        try:
            done, _ = await asyncio.wait({handing, connecting}, return_when=FIRST_COMPLETED)
            for task in done:
                task.result()  # a store that failed under on_message ends run, loudly
        finally:
            for task in (handing, connecting):
                task.cancel()
            for task in (handing, connecting):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _connect(self) -> None:
        """The gateway until ``close`` (discord.py reconnects and resumes by itself)."""
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            raise ConfigError(
                "Discord refused the Message Content intent: switch it on for the bot"
                " (Developer Portal, Bot, Privileged Gateway Intents)"
            ) from None

    async def _login(self) -> bool:
        """Log in and learn the gateway's address, tried again while Discord cannot be
        reached; False if closed first. The address comes from the REST server (``GET
        /gateway/bot``): discord.py would otherwise always dial Discord's own."""
        pause = 1.0
        while not self._closed.is_set():
            try:
                await self.client.login(self._token)
                _, url, _ = await self.client.http.get_bot_gateway()
            except discord.LoginFailure:
                raise ChatSecretError(
                    "Discord refused the bot token (FLEET_DISCORD_TOKEN)"
                ) from None
            except SENDING_ERRORS as exc:
                log.warning("discord: login failed (%s); again in %.0fs", exc, pause)
                await self._sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
            return True
        return False

    async def check(self) -> str:
        """The bot's own user (``GET /users/@me``, discord.py's login); no gateway."""
        try:
            await self.client.login(self._token)
        except discord.LoginFailure:
            raise ChatSecretError("Discord refused the bot token (FLEET_DISCORD_TOKEN)") from None
        except SENDING_ERRORS as exc:
            raise ChatSendError(f"discord: cannot log in: {exc}") from None
        me = self.client.user
        assert me is not None  # set by a login that succeeded
        return f"{me.name} (id {me.id})"

    async def _hand_on(self, on_message: OnMessage) -> None:
        while True:
            item = await self._inbox.get()
            if item is CATCH_UP:
                for channel in self.channels:
                    await self._catch_up(channel, on_message)
            else:
                await self._take(item, on_message)

    async def _catch_up(self, channel: int, on_message: OnMessage) -> None:
        """Hand on what was said in ``channel`` and its active threads after the cursor;
        a failure to read is tried again (the live messages wait behind it, in order),
        unless Discord refuses the channel."""
        pause = 1.0
        while not self._closed.is_set():
            try:
                found = await self._unread(channel)
            except (discord.Forbidden, discord.NotFound) as exc:
                log.error("discord: cannot read channel %d (%s); give the bot View Channel"
                          " and Read Message History there", channel, exc.text)  # fmt: skip
                return
            except SENDING_ERRORS as exc:
                log.warning("discord: catching up on %d failed (%s); again in %.0fs",
                            channel, exc, pause)  # fmt: skip
                await self._sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            for message in found:
                await self._take(message, on_message)
            return

    async def _unread(self, channel: int) -> list[discord.Message]:
        """The messages after the cursor in ``channel`` and in its threads that were
        active since, oldest first."""
        after = discord.Object(self._cursor[channel])
        found = [m async for m in self._history(channel, after)]
        for thread in await self._threads_since(channel, after.id):
            try:
                found += [m async for m in self._history(thread, after)]
            except discord.Forbidden:
                log.warning("discord: cannot read thread %d of channel %d", thread, channel)
        return sorted(found, key=lambda m: m.id)

    def _history(self, channel: int, after: discord.Object) -> AsyncIterator[discord.Message]:
        found = self.client.get_partial_messageable(channel)
        return found.history(after=after, limit=None, oldest_first=True)

    async def _threads_since(self, channel: int, since: int) -> list[int]:
        """The active threads under ``channel`` with a message after ``since``."""
        guild = self._guilds.get(channel)
        if guild is None:
            data: Any = await self.client.http.get_channel(channel)
            guild = self._guilds[channel] = int(data.get("guild_id") or 0)
        if not guild:
            return []  # a direct message channel has no threads
        listed: Any = await self.client.http.get_active_threads(guild)
        threads = []
        for thread in listed.get("threads", []):
            parent, last = (int(thread.get(key) or 0) for key in ("parent_id", "last_message_id"))
            if parent == channel and last > since:
                self._parents[int(thread["id"])] = channel
                threads.append(int(thread["id"]))
        return threads

    async def _take(self, message: discord.Message, on_message: OnMessage) -> None:
        if message.id in self._seen:
            return  # live and in the catch-up both
        chat = self._message(message)
        if chat is not None:
            await on_message(chat)
        self._seen[message.id] = None
        if len(self._seen) > SEEN_KEPT:
            self._seen.popitem(last=False)
        place = message.channel.id
        channel = self._parents.get(place, place)
        if channel in self._cursor and message.id > self._cursor[channel]:
            self._cursor[channel] = message.id
            self._save_cursor()

    def _message(self, message: discord.Message) -> ChatMessage | None:
        me = self.client.user
        if message.author.bot or message.webhook_id is not None:
            return None  # other bots, webhooks, and the fleet's own replies
        if me is not None and message.author.id == me.id:
            return None
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return None
        channel = message.channel
        if isinstance(channel, discord.Thread):
            self._parents[channel.id] = channel.parent_id
        parent = self._parents.get(channel.id)
        room, thread = (str(parent), str(channel.id)) if parent else (str(channel.id), None)
        return ChatMessage(
            network=self.network,
            room=room,
            sender=str(message.author.id),
            event_id=str(message.id),
            text=message.content,
            thread_root=thread,
        )

    # -- sending ---------------------------------------------------------------------------

    async def reply(self, record: ChatRecord, text: str) -> None:
        await self._until_ready()
        channel = int(record.thread_root or record.room)
        asked = int(record.event_id)
        parts = split_text(text)
        posted = await self._replies_posted(channel, asked)
        reference = discord.MessageReference(
            message_id=asked, channel_id=channel, fail_if_not_exists=False
        )
        for n in range(posted, len(parts)):
            await self._post(channel, parts[n], reply_nonce(record, n), reference)

    async def notice(self, room: str, text: str, notice_id: str) -> None:
        await self._until_ready()
        for n, part in enumerate(split_text(text)):
            await self._post(int(room), part, f"n{notice_id}.{n}"[:25], None)

    async def _replies_posted(self, channel: int, asked: int) -> int:
        """How many parts of the reply to ``asked`` the bot already posted (a restart
        between posting and the store's mark)."""
        me = self.client.user
        assert me is not None  # logged in (``_until_ready``)
        found = self.client.get_partial_messageable(channel)
        posted = 0
        try:
            async for message in found.history(
                after=discord.Object(asked), limit=REPLY_LOOKBACK, oldest_first=True
            ):
                reference = message.reference
                if message.author.id == me.id and reference and reference.message_id == asked:
                    posted += 1
        except SENDING_ERRORS as exc:
            raise _send_error(f"discord: reading channel {channel} failed", exc) from None
        return posted

    async def _post(
        self, channel: int, text: str, nonce: str, reference: discord.MessageReference | None
    ) -> None:
        found = self.client.get_partial_messageable(channel)
        mentions = discord.AllowedMentions(everyone=False, users=False, roles=False)
        try:
            if reference is None:
                await found.send(text, nonce=nonce, allowed_mentions=mentions)
            else:
                await found.send(
                    text, nonce=nonce, reference=reference, allowed_mentions=mentions,
                    mention_author=True,
                )  # fmt: skip
        except SENDING_ERRORS as exc:
            raise _send_error(f"discord: sending to channel {channel} failed", exc) from None

    async def _until_ready(self) -> None:
        """Until ``run`` has logged in; ``ChatSendError`` once closed instead."""
        if not self._ready.is_set() and not await unless_closed(self._ready.wait(), self._closed):
            raise ChatSendError("discord: the connector closed before it logged in")

    # -- the cursor ------------------------------------------------------------------------

    def _load_cursor(self) -> None:
        """The saved cursor; a channel without one (the first start, a channel new in the
        roster) starts now: its earlier history is not new."""
        saved = load_cursor(self.state_path).get("channels")
        saved = saved if isinstance(saved, dict) else {}
        now = discord.utils.time_snowflake(discord.utils.utcnow())
        for channel in self.channels:
            value = str(saved.get(str(channel)))
            self._cursor[channel] = int(value) if value.isdigit() else now
        self._save_cursor()

    def _save_cursor(self) -> None:
        channels = {str(c): str(m) for c, m in self._cursor.items()}
        save_cursor(self.state_path, {"channels": channels})

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    async def close(self) -> None:
        self._closed.set()
        await self.client.close()


def _send_error(what: str, exc: BaseException) -> ChatSendError:
    """A refusal for good (a deleted channel, no permission there, a malformed message:
    403, 404 or 400) or a passing failure (429 beyond discord.py's own waits, a 5xx, no
    answer)."""
    refused = isinstance(exc, discord.HTTPException) and exc.status in (400, 403, 404)
    return (ChatRefusedError if refused else ChatSendError)(f"{what}: {exc}")
