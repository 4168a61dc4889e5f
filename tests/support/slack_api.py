"""A loopback server speaking the part of Slack's API that the Slack adapter uses.

A fake only because no machine here reaches slack.com. It keeps to Slack's documented
shapes: every Web API answer is JSON with ``ok``, a failure is ``{"ok": false, "error":
"..."}`` (HTTP 200, as Slack does); the token travels as ``Authorization: Bearer``
(slack_sdk's way) and its kind is checked (``xoxb-`` for the Web API, ``xapp-`` for
``apps.connections.open``). The Socket Mode WebSocket opens with a ``hello``, pushes
``events_api`` envelopes (one ``event_callback`` each, ``envelope_id``, ``retry_attempt``)
and takes acknowledgements ``{"envelope_id": ...}``; an envelope not acknowledged is sent
again on the next connection with ``retry_attempt`` one higher, as Slack retries. Like
Slack, a message the bot posts comes back as an event too (with ``bot_id``).

Methods: auth.test, apps.connections.open, chat.postMessage (``thread_ts``, ``metadata``),
conversations.replies and conversations.history (``oldest``, ``include_all_metadata``,
cursor paging; a thread's root shows ``reply_count`` and ``latest_reply``). The server runs in a
thread of its own with its own event loop, so sync tests (the e2e) and async ones (the
adapter's unit tests, in their own loop) use it alike.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import WSMsgType, web

T = TypeVar("T")
BOT_TOKEN = "xoxb-1-fleet-test"
APP_TOKEN = "xapp-1-A1-fleet-test"
BOT_USER, BOT_ID, TEAM, APP = "UFLEETBOT", "BFLEETBOT", "T0FLEET", "A0FLEET"
PAGE = 100
"""Messages per page at most (Slack's own pages are up to 1000 for replies, 999 for
history): small, so a test's long thread takes the cursor; a client follows either."""


@dataclass
class SlackState:
    channels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Envelopes sent and not acknowledged, by envelope id, oldest first."""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: dict[str, list[str]] = field(default_factory=dict)
    """Errors the next calls of a method answer with (a test's fault injection)."""
    acked: list[str] = field(default_factory=list)
    connections: int = 0


class SlackServer:
    def __init__(self) -> None:
        self.state = SlackState()
        self._last_ts = 0.0
        self._sockets: list[web.WebSocketResponse] = []
        self._tickets: set[str] = set()
        self._sending: set[asyncio.Future[None]] = set()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    # -- the test's side (any thread) ----------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def channel(self, channel: str) -> str:
        return self._call(self._channel, channel)

    def say(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """A person posts: the message is stored and pushed as an event; its ts."""
        return self._call(self._post, channel, {"user": user, "text": text}, thread_ts)

    def push(self, channel: str, event: dict[str, Any]) -> None:
        """An event of another shape (an edit, a join): pushed, not stored as a message."""
        self._call(self._push, {**event, "channel": channel})

    def messages(self, channel: str) -> list[dict[str, Any]]:
        return self._call(lambda: [dict(m) for m in self.state.channels[channel]])

    def bot_messages(self, channel: str) -> list[dict[str, Any]]:
        return [m for m in self.messages(channel) if m.get("bot_id") == BOT_ID]

    def fail_next(self, method: str, error: str) -> None:
        self._call(lambda: self.state.failures.setdefault(method, []).append(error))

    def forget_pending(self) -> None:
        """Slack gave up retrying: the unacknowledged envelopes are not sent again."""
        self._call(self.state.pending.clear)

    def pending(self) -> list[str]:
        return self._call(lambda: list(self.state.pending))

    def drop_connections(self) -> None:
        """Close every Socket Mode connection from the server's side (Slack's refresh)."""
        self._call_async(self._drop())

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        async def run() -> T:
            return fn(*args)

        return self._call_async(run())

    def _call_async(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    # -- life -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._call_async(self._start())

    def stop(self) -> None:
        self._call_async(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link/", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        await self._drop()
        await self._runner.cleanup()

    async def _drop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    # -- the Web API ----------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(await request.post())
        self.state.calls.append((method, args))
        handler = {
            "auth.test": (BOT_TOKEN, self._auth_test),
            "apps.connections.open": (APP_TOKEN, self._connections_open),
            "chat.postMessage": (BOT_TOKEN, self._post_message),
            "conversations.replies": (BOT_TOKEN, self._replies),
            "conversations.history": (BOT_TOKEN, self._history),
        }.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        wanted, fn = handler
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token:
            return _error("not_authed")
        if token != wanted:
            same_kind = token.split("-")[0] == wanted.split("-")[0]
            return _error("invalid_auth" if same_kind else "not_allowed_token_type")
        failures = self.state.failures.get(method)
        if failures:
            return _error(failures.pop(0))
        answer: dict[str, Any] = fn(args)
        return web.json_response({"ok": "error" not in answer, **answer})

    def _auth_test(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://fleet.slack.test/", "team": "fleet", "user": "fleet",
                "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID}  # fmt: skip

    def _connections_open(self, _args: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return {"url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}"}

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, text = str(args.get("channel", "")), args.get("text")
        if channel not in self.state.channels:
            return {"error": "channel_not_found"}
        if not text:
            return {"error": "no_text"}
        metadata = args.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        thread = args.get("thread_ts")
        if thread and not self._find(channel, str(thread)):
            return {"error": "thread_not_found"}
        fields = {"bot_id": BOT_ID, "user": BOT_USER, "text": text, "metadata": metadata}
        ts = self._post(channel, fields, thread)
        return {"channel": channel, "ts": ts, "message": self._find(channel, ts)}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel", "")), str(args.get("ts", ""))
        if channel not in self.state.channels:
            return {"error": "channel_not_found"}
        parent = self._find(channel, ts)
        if parent is None:
            return {"error": "thread_not_found"}
        root = parent.get("thread_ts") or ts
        oldest = float(args.get("oldest") or 0)
        in_thread = [
            m for m in self.state.channels[channel]
            if m["ts"] == root or (m.get("thread_ts") == root and float(m["ts"]) > oldest)
        ]  # fmt: skip
        thread = [self._shown(channel, m, args) for m in in_thread]
        return self._page(thread, args)

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        """The channel's messages, newest first: thread replies only if also sent to it."""
        channel = str(args.get("channel", ""))
        if channel not in self.state.channels:
            return {"error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        top = [
            m for m in self.state.channels[channel]
            if float(m["ts"]) > oldest
            and (m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast")
        ]  # fmt: skip
        shown = [self._shown(channel, m, args) for m in top]
        return self._page(list(reversed(shown)), args)

    def _shown(self, channel: str, message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """A message as the conversations methods show it: a thread's root counts its replies."""
        shown = dict(message)
        if str(args.get("include_all_metadata", "")).lower() not in ("1", "true"):
            shown.pop("metadata", None)
        replies = [m["ts"] for m in self.state.channels[channel]
                   if m.get("thread_ts") == message["ts"]]  # fmt: skip
        if replies:
            shown.update(
                thread_ts=message["ts"], reply_count=len(replies), latest_reply=replies[-1]
            )
        return shown

    def _page(self, messages: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        start, limit = int(args.get("cursor") or 0), min(int(args.get("limit") or PAGE), PAGE)
        page = messages[start : start + limit]
        more = start + limit < len(messages)
        cursor = str(start + limit) if more else ""
        return {"messages": page, "has_more": more, "response_metadata": {"next_cursor": cursor}}

    # -- Socket Mode ----------------------------------------------------------------------
    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.state.connections += 1
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": len(self._sockets),
                            "debug_info": {"host": "fleet-test"},
                            "connection_info": {"app_id": APP}})  # fmt: skip
        for envelope in list(self.state.pending.values()):  # Slack's retries
            envelope["retry_attempt"] += 1
            envelope["retry_reason"] = "timeout"
            await ws.send_json(envelope)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    envelope_id = json.loads(msg.data).get("envelope_id")
                    if self.state.pending.pop(envelope_id, None) is not None:
                        self.state.acked.append(envelope_id)
        finally:
            self._sockets.remove(ws)
        return ws

    # -- state ----------------------------------------------------------------------------
    def _channel(self, channel: str) -> str:
        self.state.channels.setdefault(channel, [])
        return channel

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.state.channels.get(channel, []) if m["ts"] == ts), None)

    def _post(self, channel: str, fields: dict[str, Any], thread: str | None) -> str:
        self._last_ts = max(time.time(), self._last_ts + 1e-6)  # Slack's: the time, unique
        ts = f"{self._last_ts:.6f}"
        message = {"type": "message", "ts": ts, **{k: v for k, v in fields.items() if v}}
        if thread:
            message["thread_ts"] = thread
        self.state.channels[channel].append(message)
        event = {**message, "channel": channel, "event_ts": ts, "channel_type": "channel"}
        event.pop("metadata", None)
        self._push(event)
        return ts

    def _push(self, event: dict[str, Any]) -> None:
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": {"token": "verification", "team_id": TEAM, "api_app_id": APP,
                        "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10]}",
                        "event_time": int(time.time()), "event": event},
        }  # fmt: skip
        self.state.pending[envelope_id] = envelope
        if self._sockets:  # Slack sends each envelope on one of the app's connections
            sending = asyncio.ensure_future(self._sockets[-1].send_json(envelope))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)


def _error(error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error})


@contextmanager
def slack_server() -> Iterator[SlackServer]:
    server = SlackServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
