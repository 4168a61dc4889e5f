"""The Slack adapter: slack_sdk (the ``chat`` extra), Socket Mode in, the Web API out.

Socket Mode needs no public URL: the app-level token (``FLEET_SLACK_APP_TOKEN``, xapp-)
opens a WebSocket (``apps.connections.open``) on which Slack pushes events, each in an
envelope Slack sends again until it is acknowledged. An envelope is acknowledged only
after ``on_message`` returned (the message is stored), so a crash before that makes
Slack redeliver it and the store keeps one (the message id is ``channel:ts``, the same
on every retry). Envelopes are handled one at a time, in the order they came.

Replies go out with the bot token (``FLEET_SLACK_BOT_TOKEN``, xoxb-) in the thread of
the message that asked. ``chat.postMessage`` has no idempotency key, so each reply
carries the record's id in its message metadata (event type ``fleet_reply``) and, before
posting, the thread is read (``conversations.replies``) for one of ours with that id: a
reply sent before a crash between posting and the store's mark is not posted again.
A fleet notice carries its ``notice_id`` the same way (event type ``fleet_notice``) and
the channel's newest messages are read for it first (``conversations.history``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

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
from fleet_queue.connector.slack_history import SlackCursor, missed, pages
from fleet_queue.settings import Settings, reveal

if TYPE_CHECKING:
    from slack_sdk.socket_mode.aiohttp import SocketModeClient
    from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient

log = logging.getLogger(__name__)

REPLY_EVENT = "fleet_reply"
"""The metadata event type of our replies; its payload's ``chat_id`` is the record's id."""
NOTICE_EVENT = "fleet_notice"
"""The metadata event type of our notices; its payload's ``notice_id`` is the notice's id."""
NOTICE_LOOKBACK = 100
"""The channel's newest messages read for a notice already posted (before a crash or a
lost answer): a notice is tried again within seconds, so it would be among them."""
USER_SUBTYPES = (None, "thread_broadcast")
"""Message subtypes a person typed; edits, deletions, joins and bots' posts are not."""
AUTH_ERRORS = (
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "not_allowed_token_type",
)  # fmt: skip
REFUSED = (
    "channel_not_found", "not_in_channel", "is_archived", "channel_is_archived",
    "msg_too_long", "no_text", "restricted_action", "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel", "restricted_action_non_threadable_channel",
    "cannot_reply_to_message", "thread_not_found", "access_denied", "team_access_not_granted",
    "missing_scope", "ekm_access_denied", "invalid_metadata_format", "invalid_metadata_schema",
    "metadata_too_large",
)  # fmt: skip
"""Web API errors of a send refused for good; any other (ratelimited, internal_error,
fatal_error, request_timeout, no answer) passes and is tried again."""
RETRY_MAX = 30.0
PING_INTERVAL = 5.0
"""Seconds between the SDK's pings: a connection silent for four of them is replaced."""
SEND_ERRORS = (SlackClientError, OSError, TimeoutError)


def build(config: ChatConfig, settings: Settings) -> SlackAdapter:
    """The adapter ``fleet connector run`` serves (``fleet_queue.connector.adapters``)."""
    return SlackAdapter(
        config,
        settings.run_dir / "chat",
        bot_token=reveal(settings.slack_bot_token),
        app_token=reveal(settings.slack_app_token),
    )


class SlackAdapter:
    network = "slack"

    def __init__(
        self,
        config: ChatConfig,
        state_dir: Path,
        *,
        bot_token: str | None,
        app_token: str | None,
    ) -> None:
        if not bot_token or not app_token:
            raise ChatSecretError(
                "the Slack connector needs FLEET_SLACK_BOT_TOKEN (xoxb-)"
                " and FLEET_SLACK_APP_TOKEN (xapp-)"
            )
        if not bot_token.startswith("xoxb-") or not app_token.startswith("xapp-"):
            raise ChatSecretError(
                "FLEET_SLACK_BOT_TOKEN must be a bot token (xoxb-…) and"
                " FLEET_SLACK_APP_TOKEN an app-level token (xapp-…)"
            )
        self.config = config
        self.cursor = SlackCursor.load(state_dir / "slack.json")
        self.app_token = app_token
        base = config.api_url or AsyncWebClient.BASE_URL
        self.web = AsyncWebClient(token=bot_token, base_url=base.rstrip("/") + "/")
        self.socket: SocketModeClient | None = None
        self.bot_user: str | None = None
        self.bot_id: str | None = None
        self._inbox: asyncio.Queue[SocketModeRequest] = asyncio.Queue()
        self._closed = asyncio.Event()
        self._ready = asyncio.Event()

    async def run(self, on_message: OnMessage) -> None:
        from slack_sdk.socket_mode.aiohttp import SocketModeClient

        url = await self._start()
        if self._closed.is_set():
            return
        self.cursor.start(list(self.config.rooms))
        # Built here, not in __init__: the client starts a task and an aiohttp session.
        self.socket = SocketModeClient(
            self.app_token, web_client=self.web, logger=log, ping_interval=PING_INTERVAL
        )
        self.socket.wss_uri = url
        self.socket.socket_mode_request_listeners.append(self._enqueue)
        await self.socket.connect()  # type: ignore[no-untyped-call]
        self._ready.set()
        log.info("slack: connected as %s", self.bot_user)
        await self._catch_up(on_message)  # live envelopes wait in the inbox meanwhile
        while not self._closed.is_set():
            request = await unless_closed(self._inbox.get(), self._closed)
            if request is None:
                return
            if request.type == "events_api":
                await self._hand_on(request.payload.get("event"), on_message)
            with contextlib.suppress(*SEND_ERRORS):  # not acknowledged: Slack sends it again
                await self.socket.send_socket_mode_response(
                    SocketModeResponse(envelope_id=request.envelope_id)
                )

    async def _start(self) -> str:
        """Who the bot is (its own messages are skipped) and the WebSocket's URL; a token
        Slack refuses is a ``ConfigError``, an unreachable Slack is tried again."""
        pause = 1.0
        while not self._closed.is_set():
            try:
                _, url = await self._authenticate()
                return url
            except SEND_ERRORS as exc:
                problem = _why(exc)
            log.warning("slack: cannot connect (%s); again in %.0fs", problem, pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), pause)
            pause = min(pause * 2, RETRY_MAX)
        return ""

    async def _authenticate(self) -> tuple[dict[str, Any], str]:
        """auth.test (who the bot is) and apps.connections.open (the WebSocket's URL),
        once; a token Slack refuses is a ``ChatSecretError``."""
        try:
            auth = await self.web.auth_test()
            self.bot_user, self.bot_id = auth.get("user_id"), auth.get("bot_id")
            opened = await self.web.apps_connections_open(app_token=self.app_token)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in AUTH_ERRORS:
                raise ChatSecretError(f"Slack refused the connector's token: {error}") from None
            raise
        return dict(auth.data) if isinstance(auth.data, dict) else {}, str(opened["url"])

    async def check(self) -> str:
        try:
            auth, _ = await self._authenticate()  # the URL is not dialled: nothing received
        except SEND_ERRORS as exc:
            raise ChatSendError(f"slack: cannot connect: {_why(exc)}") from None
        return f"{auth.get('user')} ({auth.get('user_id')}) in {auth.get('team')}"

    async def _enqueue(
        self, _client: AsyncBaseSocketModeClient, request: SocketModeRequest
    ) -> None:
        self._inbox.put_nowait(request)  # the SDK calls listeners in tasks of their own

    async def _catch_up(self, on_message: OnMessage) -> None:
        """What was said while the connector was down, from where it had read."""
        for channel in self.config.rooms:
            try:
                found = await missed(self.web, self.cursor, channel)
            except SEND_ERRORS as exc:
                log.warning("slack: cannot read what %s said meanwhile: %s", channel, _why(exc))
                continue
            for event in found:
                await self._hand_on({"type": "message", **event}, on_message)

    async def _hand_on(self, event: object, on_message: OnMessage) -> None:
        message = self._message(event)
        if message is None:
            return
        await on_message(message)  # stored before Slack hears it arrived
        if message.room in self.config.rooms:
            ts = message.event_id.rpartition(":")[2]
            self.cursor.seen(message.room, ts, message.thread_root)

    def _message(self, event: object) -> ChatMessage | None:
        if not isinstance(event, dict) or event.get("type") != "message":
            return None
        if event.get("subtype") not in USER_SUBTYPES or event.get("bot_id"):
            return None
        channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
        if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(user, str)):
            return None
        if user == self.bot_user:
            return None
        text, thread = event.get("text"), event.get("thread_ts")
        return ChatMessage(
            network=self.network,
            room=channel,
            sender=user,
            event_id=f"{channel}:{ts}",
            text=text if isinstance(text, str) else "",
            thread_root=thread if isinstance(thread, str) and thread != ts else None,
        )

    async def reply(self, record: ChatRecord, text: str) -> None:
        await self._until_ready()
        ts = record.event_id.rpartition(":")[2]
        thread = record.thread_root or ts
        try:
            if await self._replied(record, thread):
                log.info("slack: chat message %d was answered before; not again", record.id)
                return
            await self.web.chat_postMessage(
                channel=record.room,
                text=text,
                thread_ts=thread,
                metadata={"event_type": REPLY_EVENT, "event_payload": {"chat_id": record.id}},
            )
        except SEND_ERRORS as exc:
            raise _send_error(f"slack: replying in {record.room} failed", exc) from None

    async def _replied(self, record: ChatRecord, thread: str) -> bool:
        """Whether the thread already holds our reply to ``record`` (sent before a crash)."""
        async for message in pages(
            self.web.conversations_replies,
            channel=record.room, ts=thread, include_all_metadata=True,
        ):  # fmt: skip
            if self._ours(message) and _payload(message, REPLY_EVENT, "chat_id") == record.id:
                return True
        return False

    async def _noticed(self, room: str, notice_id: str) -> bool:
        """Whether one of the channel's newest messages is our notice ``notice_id``."""
        page = await self.web.conversations_history(
            channel=room, limit=NOTICE_LOOKBACK, include_all_metadata=True
        )
        return any(
            isinstance(m, dict)
            and self._ours(m)
            and _payload(m, NOTICE_EVENT, "notice_id") == notice_id
            for m in page.get("messages") or []
        )

    def _ours(self, message: dict[str, Any]) -> bool:
        return bool(
            (self.bot_id and message.get("bot_id") == self.bot_id)
            or (self.bot_user and message.get("user") == self.bot_user)
        )

    async def notice(self, room: str, text: str, notice_id: str) -> None:
        await self._until_ready()
        try:
            if await self._noticed(room, notice_id):
                log.info("slack: notice %s to %s was posted before; not again", notice_id, room)
                return
            await self.web.chat_postMessage(
                channel=room,
                text=text,
                metadata={"event_type": NOTICE_EVENT, "event_payload": {"notice_id": notice_id}},
            )
        except SEND_ERRORS as exc:
            raise _send_error(f"slack: a notice to {room} failed", exc) from None

    async def _until_ready(self) -> None:
        """Until ``run`` has connected (the bot's id is known); ``ChatSendError`` once closed."""
        if not self._ready.is_set() and not await unless_closed(self._ready.wait(), self._closed):
            raise ChatSendError("slack: the connector closed before it connected")

    async def close(self) -> None:
        self._closed.set()
        if self.socket is not None:
            await self.socket.close()  # type: ignore[no-untyped-call]


def _payload(message: dict[str, Any], event_type: str, key: str) -> object:
    """``key`` of the message's metadata payload when its event type is ``event_type``."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("event_type") != event_type:
        return None
    payload = metadata.get("event_payload")
    return payload.get(key) if isinstance(payload, dict) else None


def _send_error(what: str, exc: BaseException) -> ChatSendError:
    refused = isinstance(exc, SlackApiError) and exc.response.get("error") in REFUSED
    return (ChatRefusedError if refused else ChatSendError)(f"{what}: {_why(exc)}")


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", exc))
    return str(exc) or type(exc).__name__
