"""Discord on loopback: the subset of its HTTP API and gateway that discord.py uses.

A fake only because no machine here reaches Discord. It is a real server (aiohttp, its
own thread and event loop) speaking Discord's shapes: ``GET /users/@me`` and ``GET
/gateway/bot``; the gateway WebSocket (HELLO, IDENTIFY -> READY + GUILD_CREATE,
heartbeats acknowledged, ``MESSAGE_CREATE`` dispatches numbered in sequence, RESUME
answered with INVALID_SESSION so a reconnect identifies afresh, as Discord may);
``POST /channels/{id}/messages`` (``message_reference``, ``nonce`` + ``enforce_nonce``
deduplication, the 2000-character limit), ``GET /channels/{id}/messages`` (after,
before, limit; newest first, as Discord answers), ``GET /channels/{id}`` and ``GET
/guilds/{id}/threads/active``. Every request carries ``Authorization:
Bot <token>`` or is refused with Discord's 401; errors have Discord's ``{"message",
"code"}`` shape. Frames are uncompressed JSON text (discord.py asks for zlib-stream and
reads text frames as they are). A client without the Message Content intent receives
guild messages with empty content, as from Discord.

The people in the test talk through methods (``say``), not the API: only the bot is a
client here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1_420_070_400_000
MESSAGE_CONTENT = 1 << 15
"""The privileged intent without which guild messages arrive with empty content."""
MESSAGE_CONTENT_LIMITED = 1 << 19
"""The application flag of a bot whose Message Content intent is switched on."""
NONCE_WINDOW = 300.0
"""Seconds a nonce sent with ``enforce_nonce`` answers with the message it made."""
MAX_CONTENT = 2000
HEARTBEAT_MS = 41_250
API = "/api/v10"

T = TypeVar("T")


@dataclass(frozen=True)
class DiscordUser:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "username": self.name, "global_name": self.name,
            "discriminator": "0", "avatar": None, "bot": self.bot, "public_flags": 0,
        }  # fmt: skip


@dataclass
class _Session:
    ws: web.WebSocketResponse
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    intents: int | None = None


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON as Discord sends it: discord.py decodes a body only under exactly this type."""
    body = json.dumps(data).encode()
    return web.Response(body=body, status=status, content_type="application/json")


def _error(status: int, message: str, code: int = 0, **extra: Any) -> web.Response:
    return _json({"message": message, "code": code, **extra}, status)


class DiscordAPI:
    """One guild with text channels (and threads), one bot, any number of people."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._last_id = 0
        self.bot = DiscordUser(self._snowflake(), "fleet", bot=True)
        self.guild_id = self._snowflake()
        self.channels: dict[int, dict[str, Any]] = {}
        self._messages: dict[int, list[dict[str, Any]]] = {}
        self._nonces: dict[tuple[int, str], tuple[float, dict[str, Any]]] = {}
        self._sessions: list[_Session] = []
        self.posts = 0
        """Every accepted POST of a message by the bot, repeats answered by nonce included."""
        self.identified = 0
        self.refusing = False
        self.loop = asyncio.new_event_loop()
        self.port = 0

    # -- the test's side (any thread) ---------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API}"

    def person(self, name: str) -> DiscordUser:
        return DiscordUser(self._call(self._snowflake), name)

    def text_channel(self, name: str) -> int:
        return self._call(self._add_channel, name, None)

    def thread(self, parent: int, name: str) -> int:
        """A public thread under ``parent`` (made before the bot connects: it is in
        GUILD_CREATE)."""
        return self._call(self._add_channel, name, parent)

    def say(self, who: DiscordUser, channel: int, text: str) -> str:
        """``who`` posts ``text``: stored, dispatched to the connected bot; its id."""
        message = self._call(self._create, channel, who, text, None, None)
        return str(message["id"])

    def history(self, channel: int) -> list[dict[str, Any]]:
        """The channel's messages, oldest first."""
        return self._call(lambda: json.loads(json.dumps(self._messages[channel])))

    def bot_replies(self, channel: int) -> dict[str, list[dict[str, Any]]]:
        """The bot's messages in ``channel`` by the message they reply to."""
        found: dict[str, list[dict[str, Any]]] = {}
        for message in self.history(channel):
            target = (message.get("message_reference") or {}).get("message_id")
            if message["author"]["id"] == str(self.bot.id) and target:
                found.setdefault(target, []).append(message)
        return found

    def connected(self) -> int:
        """Gateway sessions that identified and are still open."""
        return self._call(lambda: sum(1 for s in self._sessions if s.intents is not None))

    @contextmanager
    def gateway_down(self) -> Iterator[None]:
        """The gateway closes every connection (as Discord does now and then) and refuses
        new ones until the block ends: the bot reconnects after it, and must catch up on
        what was said in between."""
        self.refusing = True
        asyncio.run_coroutine_threadsafe(self._drop(), self.loop).result(10)
        try:
            yield
        finally:
            self.refusing = False

    def connector_block(self, channel: int, allow: list[DiscordUser]) -> dict[str, Any]:
        return {
            "kind": "discord",
            "api_url": self.api_url,
            "rooms": {str(channel): {"allow": [str(p.id) for p in allow]}},
        }

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    # -- state (the server's loop) ------------------------------------------------------

    def _snowflake(self) -> int:
        now = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last_id = max(now, self._last_id + 1)
        return self._last_id

    def _add_channel(self, name: str, parent: int | None) -> int:
        channel_id = self._snowflake()
        channel: dict[str, Any] = {
            "id": str(channel_id), "type": 0, "guild_id": str(self.guild_id), "name": name,
            "position": len(self.channels), "permission_overwrites": [], "nsfw": False,
            "parent_id": None, "topic": None, "last_message_id": None,
            "rate_limit_per_user": 0, "flags": 0,
        }  # fmt: skip
        if parent is not None:
            channel.update(
                type=11, parent_id=str(parent), owner_id=str(self.bot.id), message_count=0,
                member_count=1, thread_metadata={
                    "archived": False, "auto_archive_duration": 1440, "locked": False,
                    "archive_timestamp": datetime.now(UTC).isoformat(),
                },
            )  # fmt: skip
        self.channels[channel_id] = channel
        self._messages[channel_id] = []
        return channel_id

    def _create(
        self,
        channel: int,
        author: DiscordUser,
        content: str,
        reference: dict[str, Any] | None,
        nonce: str | None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": str(self._snowflake()), "channel_id": str(channel), "author": author.payload(),
            "content": content, "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
            "type": 0, "flags": 0, "components": [],
        }  # fmt: skip
        if reference is not None:
            message.update(type=19, message_reference=reference["ref"])
            message["referenced_message"] = reference["message"]
        if nonce is not None:
            message["nonce"] = nonce
        self._messages[channel].append(message)
        self.channels[channel]["last_message_id"] = message["id"]
        self.loop.create_task(self._dispatch_message(message))
        return message

    async def _dispatch_message(self, message: dict[str, Any]) -> None:
        for session in list(self._sessions):
            if session.intents is None or session.ws.closed:
                continue
            data = {**message, "guild_id": str(self.guild_id)}
            if not session.intents & MESSAGE_CONTENT:
                data["content"] = ""
            await self._send(session, "MESSAGE_CREATE", data)

    async def _send(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        payload = {"op": 0, "t": event, "s": next(session.seq), "d": data}
        await session.ws.send_str(json.dumps(payload))

    async def _drop(self) -> None:
        for session in list(self._sessions):
            await session.ws.close(code=1001, message=b"going away")

    # -- HTTP ---------------------------------------------------------------------------

    @web.middleware
    async def _authorized(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        if request.path.startswith(API) and (
            request.headers.get("Authorization") != f"Bot {self.token}"
        ):
            return _error(401, "401: Unauthorized")
        response: web.StreamResponse = await handler(request)
        return response

    def _channel(self, request: web.Request) -> int | None:
        try:
            channel = int(request.match_info["channel"])
        except ValueError:
            return None
        return channel if channel in self.channels else None

    async def _me(self, request: web.Request) -> web.Response:
        return _json(self.bot.payload())

    async def _application(self, request: web.Request) -> web.Response:
        return _json(
            {
                "id": str(self.bot.id), "name": "fleet", "description": "", "icon": None,
                "bot_public": False, "bot_require_code_grant": False, "verify_key": "0" * 64,
                "owner": self.bot.payload(), "flags": MESSAGE_CONTENT_LIMITED,
            }
        )  # fmt: skip

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        url = f"ws://127.0.0.1:{self.port}"
        return _json({"url": url, "shards": 1, "session_start_limit": limit})

    async def _get_channel(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel is None:
            return _error(404, "Unknown Channel", 10003)
        return _json(self.channels[channel])

    async def _active_threads(self, request: web.Request) -> web.Response:
        if request.match_info["guild"] != str(self.guild_id):
            return _error(404, "Unknown Guild", 10004)
        threads = [c for c in self.channels.values() if c["type"] == 11]
        return _json({"threads": threads, "members": []})

    async def _post_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel is None:
            return _error(404, "Unknown Channel", 10003)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "400: Bad Request")
        content = body.get("content") or ""
        if not isinstance(content, str) or not content:
            return _error(400, "Cannot send an empty message", 50006)
        if len(content) > MAX_CONTENT:
            return self._form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer.")
        nonce = body.get("nonce")
        key = (self.bot.id, str(nonce))
        if nonce is not None and body.get("enforce_nonce"):
            earlier = self._nonces.get(key)
            if earlier is not None and time.monotonic() - earlier[0] < NONCE_WINDOW:
                self.posts += 1
                return _json(earlier[1])
        reference = None
        wanted = body.get("message_reference")
        if isinstance(wanted, dict):
            target = next(
                (m for m in self._messages[channel] if m["id"] == str(wanted.get("message_id"))),
                None,
            )
            if target is not None:
                ref = {"type": 0, "message_id": target["id"], "channel_id": str(channel)}
                reference = {"ref": {**ref, "guild_id": str(self.guild_id)}, "message": target}
            elif wanted.get("fail_if_not_exists", True):
                return self._form_error(
                    "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
        message = self._create(channel, self.bot, content, reference, nonce)
        self.posts += 1
        if nonce is not None and body.get("enforce_nonce"):
            self._nonces[key] = (time.monotonic(), message)
        return _json(message)

    @staticmethod
    def _form_error(where: str, code: str, text: str) -> web.Response:
        errors = {where: {"_errors": [{"code": code, "message": text}]}}
        return _error(400, "Invalid Form Body", 50035, errors=errors)

    async def _get_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        if channel is None:
            return _error(404, "Unknown Channel", 10003)
        try:
            limit = int(request.query.get("limit", "50"))
            after = int(request.query.get("after", "0"))
            before = int(request.query.get("before", str(1 << 64)))
        except ValueError:
            return self._form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.")
        if not 1 <= limit <= 100:
            return self._form_error("limit", "NUMBER_TYPE_MAX", "Must be between 1 and 100.")
        found = [m for m in self._messages[channel] if after < int(m["id"]) < before]
        # After: the oldest ``limit`` past the cursor; else the newest. Newest first, always.
        page = found[:limit] if "after" in request.query else found[-limit:]
        return _json(page[::-1])

    # -- the gateway --------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.refusing:
            return _error(503, "503: Service Unavailable")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = _Session(ws)
        self._sessions.append(session)
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_MS}}))
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                await self._gateway_op(session, json.loads(frame.data))
        finally:
            self._sessions.remove(session)
        return ws

    async def _gateway_op(self, session: _Session, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == 1:  # heartbeat
            await session.ws.send_str(json.dumps({"op": 11}))
        elif op == 2:  # identify
            if not isinstance(data, dict) or data.get("token") != self.token:
                await session.ws.close(code=4004, message=b"Authentication failed.")
                return
            session.intents = int(data.get("intents", 0))
            self.identified += 1
            await self._send(session, "READY", self._ready())
            await self._send(session, "GUILD_CREATE", self._guild())
        elif op == 6:  # resume: sessions are not kept here; identify again
            await session.ws.send_str(json.dumps({"op": 9, "d": False}))

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10, "user": self.bot.payload(), "guilds": [
                {"id": str(self.guild_id), "unavailable": True}
            ], "session_id": f"s{self._snowflake()}",
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}",
            "application": {"id": str(self.bot.id), "flags": 0}, "private_channels": [],
        }  # fmt: skip

    def _guild(self) -> dict[str, Any]:
        everyone = {
            "id": str(self.guild_id), "name": "@everyone", "permissions": str(0x10C00),
            "position": 0, "color": 0, "hoist": False, "managed": False, "mentionable": False,
        }  # fmt: skip
        channels = [c for c in self.channels.values() if c["type"] != 11]
        threads = [c for c in self.channels.values() if c["type"] == 11]
        return {
            "id": str(self.guild_id), "name": "fleet test", "icon": None,
            "owner_id": str(self.bot.id), "roles": [everyone], "emojis": [], "stickers": [],
            "features": [], "member_count": 1, "members": [], "channels": channels,
            "threads": threads, "voice_states": [], "presences": [], "unavailable": False,
            "large": False, "premium_tier": 0, "joined_at": datetime.now(UTC).isoformat(),
        }  # fmt: skip

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorized])
        app.on_shutdown.append(lambda _: self._drop())
        app.router.add_get("/", self._gateway)
        app.router.add_get(f"{API}/users/@me", self._me)
        app.router.add_get(f"{API}/gateway/bot", self._gateway_bot)
        app.router.add_get(f"{API}/oauth2/applications/@me", self._application)
        app.router.add_post(f"{API}/channels/{{channel}}/messages", self._post_message)
        app.router.add_get(f"{API}/channels/{{channel}}/messages", self._get_messages)
        app.router.add_get(f"{API}/channels/{{channel}}", self._get_channel)
        app.router.add_get(f"{API}/guilds/{{guild}}/threads/active", self._active_threads)
        return app


@contextmanager
def discord_api(token: str = "bot-token-1") -> Iterator[DiscordAPI]:
    """The server on a free loopback port in a thread of its own; stopped on the way out."""
    server = DiscordAPI(token)
    runner = web.AppRunner(server._app())
    thread = threading.Thread(target=server.loop.run_forever, name="discord-api", daemon=True)
    thread.start()

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = runner.addresses[0][1]

    asyncio.run_coroutine_threadsafe(start(), server.loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), server.loop).result(30)
        server.loop.call_soon_threadsafe(server.loop.stop)
        thread.join(10)
        server.loop.close()
