"""The Matrix adapter: matrix-nio (the ``chat`` extra), plain (unencrypted) rooms.

The bot logs in with a fixed device id (``connector.device_id``), so the transaction ids
of its replies stay in one scope across restarts: a reply sent again under the same id
after a crash is dropped by the homeserver as a repeat; a notice's transaction id is its
``notice_id``, so a notice sent again is dropped the same way. The sync position is kept in
``run/chat/matrix.json`` and moved only after a batch's messages were handed on (stored),
so a restart reads on from there and loses nothing. On the very first start the history
from before it is not taken as new messages. Replies wait until the login is done: the
service's pump runs beside ``run`` from the start, and after a restart it finds at once
the delivered messages whose reply was recorded while the connector was down.

A room in the roster may be named by an alias (``#fleet:example.org``): it is resolved to
its room id once, at the login, and an alias that does not resolve stops the start with
one line. Above this adapter a room is always the roster's own key (the alias): messages
come in under it (so its allow-list applies to the room it names) and replies and notices
to it go to the resolved room id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from fleet_queue.errors import ConfigError, FleetError
from fleet_queue.settings import Settings, reveal

if TYPE_CHECKING:
    from nio import AsyncClient

log = logging.getLogger(__name__)

SYNC_TIMEOUT_MS = 30_000
"""Long-poll of one sync: the homeserver answers at once when a message comes."""
RETRY_MAX = 30.0
REFUSED = ("M_FORBIDDEN", "M_NOT_FOUND", "M_TOO_LARGE", "M_BAD_JSON", "M_NOT_JSON")
"""Error codes of a send refused for good: not in the room (kicked, banned, never
invited), no such room, a malformed or too large event."""


def build(config: ChatConfig, settings: Settings) -> MatrixAdapter:
    """The adapter ``fleet connector run`` serves (``fleet_queue.connector.adapters``)."""
    return MatrixAdapter(
        config,
        settings.run_dir / "chat",
        password=reveal(settings.matrix_password),
        token=reveal(settings.matrix_token),
    )


class MatrixAdapter:
    network = "matrix"

    def __init__(
        self,
        config: ChatConfig,
        state_dir: Path,
        *,
        password: str | None = None,
        token: str | None = None,
    ) -> None:
        if not (password or token):
            raise ChatSecretError(
                "the Matrix connector needs FLEET_MATRIX_PASSWORD or FLEET_MATRIX_TOKEN"
            )
        assert config.homeserver is not None and config.user_id is not None
        from nio import AsyncClient, AsyncClientConfig

        self.config = config
        self.user_id = config.user_id
        self.state_path = state_dir / "matrix.json"
        self._password = password
        self._token = token
        self.client = AsyncClient(
            config.homeserver,
            config.user_id,
            device_id=config.device_id,
            store_path=None,
            config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False),
        )
        self._closed = asyncio.Event()
        self._ready = asyncio.Event()
        self._room_ids: dict[str, str] = {room: room for room in config.rooms}
        """The roster's room key (an id or an alias) -> the room id."""
        self._keys: dict[str, str] = dict(self._room_ids)
        """The room id -> the roster's key for it."""

    async def login(self) -> None:
        from nio import LoginError

        if self._token:
            self.client.restore_login(self.user_id, self.config.device_id, self._token)
            return
        answer = await self.client.login(self._password, device_name="fleet connector")
        if isinstance(answer, LoginError):
            raise ChatSecretError(f"Matrix login as {self.user_id} refused: {answer.message}")

    async def check(self) -> str:
        """whoami with the token; with the password, a login as a device of its own,
        logged out again (a login under the connector's device id could end its
        session); the roster's aliases resolved either way."""
        from nio import AsyncClient, AsyncClientConfig, LoginError, WhoamiError

        assert self.config.homeserver is not None
        if self._token:
            await self.login()
            answer = await self.client.whoami()
            if isinstance(answer, WhoamiError):
                raise _refusal(f"Matrix refused FLEET_MATRIX_TOKEN for {self.user_id}", answer)
            await self.resolve_aliases()
            return f"{answer.user_id} (device {answer.device_id})"
        probe = AsyncClient(
            self.config.homeserver,
            self.user_id,
            store_path=None,
            config=AsyncClientConfig(encryption_enabled=False, store_sync_tokens=False),
        )
        try:
            logged = await probe.login(self._password, device_name="fleet connector check")
            if isinstance(logged, LoginError):
                raise _refusal(f"Matrix login as {self.user_id} refused", logged)
            try:
                await self.resolve_aliases(probe)
            finally:
                await probe.logout()
            return f"{logged.user_id} (password login)"
        finally:
            await probe.close()

    async def run(self, on_message: OnMessage) -> None:
        from nio import SyncError

        await self.login()
        await self.resolve_aliases()
        for room in self._keys:
            await self._join(room)
        self._ready.set()
        since = self._load_since()
        first_start_ms = None if since else int(time.time() * 1000)
        pause = 1.0
        while not self._closed.is_set():
            # close() ends the long poll at once: nio would retry a cut sync on a new
            # session and hold run() for a whole SYNC_TIMEOUT_MS.
            answer = await unless_closed(
                self.client.sync(timeout=SYNC_TIMEOUT_MS, since=since), self._closed
            )
            if answer is None:
                break
            if isinstance(answer, SyncError):
                log.warning("matrix sync failed: %s; again in %.0fs", answer.message, pause)
                await self._sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            pause = 1.0
            for room_id, room in answer.rooms.join.items():
                for event in room.timeline.events:
                    message = self._message(self.key_of(room_id), event.source, first_start_ms)
                    if message is not None:
                        await on_message(message)
            for room_id in answer.rooms.invite:
                if self.key_of(room_id) in self.config.rooms:
                    await self._join(room_id)
            since = answer.next_batch
            self._save_since(since)
        await self.client.close()

    def _message(
        self, room: str, source: dict[str, Any], first_start_ms: int | None
    ) -> ChatMessage | None:
        content = source.get("content")
        if source.get("type") != "m.room.message" or not isinstance(content, dict):
            return None
        if source.get("sender") == self.user_id or content.get("msgtype") != "m.text":
            return None
        if first_start_ms is not None and int(source.get("origin_server_ts", 0)) < first_start_ms:
            return None  # history from before the connector's first start
        relates = content.get("m.relates_to")
        thread = None
        if isinstance(relates, dict) and relates.get("rel_type") == "m.thread":
            thread = relates.get("event_id") if isinstance(relates.get("event_id"), str) else None
        body = content.get("body")
        return ChatMessage(
            network=self.network,
            room=room,
            sender=str(source.get("sender", "")),
            event_id=str(source.get("event_id", "")),
            text=body if isinstance(body, str) else "",
            thread_root=thread,
        )

    async def reply(self, record: ChatRecord, text: str) -> None:
        content = {
            "msgtype": "m.text",
            "body": text,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": record.thread_root or record.event_id,
                "is_falling_back": False,
                "m.in_reply_to": {"event_id": record.event_id},
            },
        }
        await self._send(record.room, content, f"fleet-chat-{record.id}")

    async def notice(self, room: str, text: str, notice_id: str) -> None:
        content = {"msgtype": "m.notice", "body": text}
        await self._send(room, content, f"fleet-notice-{notice_id}")

    async def resolve_aliases(self, client: AsyncClient | None = None) -> None:
        """Each ``#alias`` room key to its room id; an unknown alias is a ``ConfigError``."""
        from nio import RoomResolveAliasError

        for key in self.config.rooms:
            if not key.startswith("#"):
                continue
            answer = await (client or self.client).room_resolve_alias(key)
            if isinstance(answer, RoomResolveAliasError):
                raise ConfigError(
                    f"roster connector.rooms: the Matrix alias {key} does not resolve"
                    f" ({answer.message}); name an existing alias or the room id"
                )
            self._room_ids[key] = answer.room_id
            del self._keys[key]
            self._keys[answer.room_id] = key
            log.info("matrix: room %s is %s", key, answer.room_id)

    def key_of(self, room_id: str) -> str:
        """The roster's key of a room (its alias when the roster names it so)."""
        return self._keys.get(room_id, room_id)

    async def _send(self, room: str, content: dict[str, Any], tx_id: str) -> None:
        from nio import LocalProtocolError, RoomSendError

        await self._until_ready()
        room = self._room_ids.get(room, room)
        try:
            answer = await self.client.room_send(room, "m.room.message", content, tx_id=tx_id)
        except LocalProtocolError as exc:  # logged out under us: the service tries again
            raise ChatSendError(f"matrix: sending to {room} failed: {exc}") from None
        if isinstance(answer, RoomSendError):
            refused = answer.status_code in REFUSED
            error = ChatRefusedError if refused else ChatSendError
            raise error(f"matrix: sending to {room} failed: {answer.status_code} {answer.message}")

    async def _until_ready(self) -> None:
        """Until ``run`` has logged in and joined; ``ChatSendError`` once closed instead."""
        if not self._ready.is_set() and not await unless_closed(self._ready.wait(), self._closed):
            raise ChatSendError("matrix: the connector closed before it logged in")

    async def _join(self, room: str) -> None:
        from nio import JoinError

        answer = await self.client.join(room)
        if isinstance(answer, JoinError):
            log.warning("matrix: cannot join %s: %s (invite the bot)", room, answer.message)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    def _load_since(self) -> str | None:
        since = load_cursor(self.state_path).get("next_batch")
        return since if isinstance(since, str) else None

    def _save_since(self, since: str) -> None:
        save_cursor(self.state_path, {"next_batch": since})

    async def close(self) -> None:
        self._closed.set()
        await self.client.close()


def _refusal(what: str, answer: Any) -> FleetError:
    """A secret refused (403/401: forbidden, unknown token, deactivated) or another
    failure (the homeserver down, a 5xx)."""
    code = str(getattr(answer, "status_code", "") or "")
    secret = code in ("M_FORBIDDEN", "M_UNKNOWN_TOKEN", "M_USER_DEACTIVATED", "M_MISSING_TOKEN")
    return (ChatSecretError if secret else ChatSendError)(f"{what}: {code} {answer.message}")
