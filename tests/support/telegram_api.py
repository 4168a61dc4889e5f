"""A Telegram Bot API server on loopback, for the Telegram connector's tests.

A fake only because no machine here reaches api.telegram.org: a real HTTP server
(stdlib, a thread per request) speaking the subset python-telegram-bot uses for the
connector — ``getMe``, ``deleteWebhook``, ``getUpdates`` (offset confirmation, long
poll, a newer poll ending an older one with 409 as Telegram does) and ``sendMessage``
(reply parameters, forum topics). It keeps Telegram's rules where a bug could hide: the
token is checked in the URL path (401), parameters come as a query, a form or JSON, and
a bad request gets Telegram's error shape (``{"ok": false, "error_code", "description"}``).
The test plays the people: ``say`` posts a user's message as an update, ``sent`` reads
what the bot posted.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

TOKEN = "123456:test-token-Abc_def"
BOT_ID = 123456
TEXT_MAX = 4096
MAX_POLL = 50
"""Telegram caps a long poll's timeout at 50 seconds."""


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


@dataclass
class Chat:
    id: int
    kind: str
    forum: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        if self.kind == "private":
            return {"id": self.id, "type": "private", "first_name": f"user{self.id}"}
        return {
            "id": self.id,
            "type": self.kind,
            "title": f"chat {self.id}",
            "is_forum": self.forum,
        }


class BotApi:
    """The server's state; every method is safe from the test's and the handlers' threads."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.chats: dict[int, Chat] = {}
        self.updates: list[dict[str, Any]] = []
        self.polls = 0
        """getUpdates calls so far: one after a connector's start says it is polling."""
        self.webhook = ""
        self.failures: dict[str, list[ApiError]] = {}
        self._update_ids = itertools.count(700_000_001)  # Telegram's ids start anywhere
        self._poll_generation = 0
        self._cond = threading.Condition()
        self._stopping = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- the test's side ---

    def chat(self, chat_id: int, kind: str = "supergroup", *, forum: bool = False) -> int:
        with self._cond:
            self.chats.setdefault(chat_id, Chat(chat_id, kind, forum))
        return chat_id

    def say(
        self, chat_id: int, user: int, text: str, *, topic: int | None = None, ago: float = 0.0
    ) -> int:
        """``user`` posts ``text`` in the chat (a forum ``topic``, ``ago`` seconds back): one
        update; returns its message id."""
        with self._cond:
            message = self._post(
                self.chats[chat_id],
                {"id": user, "is_bot": False, "first_name": f"user{user}", "username": f"u{user}"},
                text,
                topic=topic,
                date=int(time.time() - ago),
            )
            self.updates.append({"update_id": next(self._update_ids), "message": message})
            self._cond.notify_all()
            return int(message["message_id"])

    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """The bot's messages in the chat, oldest first."""
        with self._cond:
            return [m for m in self.chats[chat_id].messages if m["from"]["id"] == BOT_ID]

    def fail_next(
        self, method: str, code: int, description: str, retry_after: int | None = None
    ) -> None:
        """The next call of ``method`` answers with this error instead."""
        with self._cond:
            self.failures.setdefault(method, []).append(ApiError(code, description, retry_after))

    # --- the API ---

    def call(self, method: str, params: dict[str, Any]) -> Any:
        methods = ("getMe", "deleteWebhook", "getUpdates", "sendMessage")
        method = next((m for m in methods if m.lower() == method.lower()), method)
        with self._cond:
            if self.failures.get(method):
                raise self.failures[method].pop(0)
        if method == "getMe":
            return {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Fleet",
                "username": "fleet_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if method == "deleteWebhook":
            with self._cond:
                self.webhook = ""
                if str(params.get("drop_pending_updates", "")).lower() == "true":
                    self.updates.clear()
            return True
        if method == "getUpdates":
            return self._get_updates(params)
        if method == "sendMessage":
            return self._send_message(params)
        raise ApiError(404, "Not Found")

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset, limit = _int(params, "offset", 0), _int(params, "limit", 100)
        timeout = min(max(_int(params, "timeout", 0), 0), MAX_POLL)
        allowed = params.get("allowed_updates")
        with self._cond:
            if self.webhook:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is"
                    " active; use deleteWebhook to delete the webhook first",
                )
            self.polls += 1
            self._poll_generation += 1
            mine = self._poll_generation
            self._cond.notify_all()  # an older poll still waiting ends with 409
            if offset < 0:
                self.updates = self.updates[offset:]
            elif offset:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            deadline = time.monotonic() + timeout
            while True:
                found = [u for u in self.updates if not allowed or set(u) & {*allowed}]
                if found or self._stopping or time.monotonic() >= deadline:
                    return found[: max(1, min(limit, 100))]
                self._cond.wait(deadline - time.monotonic())
                if mine != self._poll_generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request;"
                        " make sure that only one bot instance is running",
                    )

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = str(params.get("text", ""))
        with self._cond:
            chat = self.chats.get(_int(params, "chat_id", 0))
            if chat is None:
                raise ApiError(400, "Bad Request: chat not found")
            if not text.strip():
                raise ApiError(400, "Bad Request: message text is empty")
            if len(text.encode("utf-16-le")) // 2 > TEXT_MAX:
                raise ApiError(400, "Bad Request: message is too long")
            reply = params.get("reply_parameters") or {}
            if "reply_to_message_id" in params:
                reply = {"message_id": params["reply_to_message_id"]}
            if not isinstance(reply, dict):
                raise ApiError(400, "Bad Request: can't parse reply parameters JSON object")
            target = None
            if "message_id" in reply:
                target = next(
                    (m for m in chat.messages if m["message_id"] == int(reply["message_id"])), None
                )
                if target is None and not reply.get("allow_sending_without_reply"):
                    raise ApiError(400, "Bad Request: message to be replied not found")
            topic = params.get("message_thread_id")
            if topic is not None and not (
                chat.forum and any(m.get("message_thread_id") == int(topic) for m in chat.messages)
            ):
                raise ApiError(400, "Bad Request: message thread not found")
            bot = {"id": BOT_ID, "is_bot": True, "first_name": "Fleet", "username": "fleet_bot"}
            message = self._post(chat, bot, text, topic=None if topic is None else int(topic))
            if target is not None:
                message["reply_to_message"] = target
            self._cond.notify_all()
            return message

    def _post(
        self, chat: Chat, sender: dict[str, Any], text: str, *, topic: int | None, date: int = 0
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": len(chat.messages) + 1,
            "from": sender,
            "chat": chat.public(),
            "date": date or int(time.time()),
            "text": text,
        }
        if topic is not None:
            message |= {"message_thread_id": topic, "is_topic_message": True}
        chat.messages.append(message)
        return message

    def start(self) -> BotApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


def _int(params: dict[str, Any], key: str, default: int) -> int:
    try:
        return int(params.get(key, default))
    except (TypeError, ValueError):
        raise ApiError(400, f"Bad Request: invalid {key} specified") from None


def _params(query: str, body: bytes, content_type: str) -> dict[str, Any]:
    """A call's parameters as Telegram reads them: query string, then form or JSON body;
    a form value that is a JSON object or array is that object (how PTB sends them)."""
    pairs = dict(urllib.parse.parse_qsl(query))
    if content_type.startswith("application/json") and body:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ApiError(400, "Bad Request: JSON object expected")
        return {**pairs, **data}
    pairs |= dict(urllib.parse.parse_qsl(body.decode("utf-8")))
    parsed: dict[str, Any] = {}
    for key, value in pairs.items():
        parsed[key] = json.loads(value) if value[:1] in ("{", "[") else value
    return parsed


def _handler(api: BotApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = path.strip("/").split("/")
            try:
                if len(parts) != 2 or parts[0] != f"bot{api.token}":
                    raise ApiError(
                        401 if parts[0].startswith("bot") else 404,
                        "Unauthorized" if parts[0].startswith("bot") else "Not Found",
                    )
                params = _params(query, body, self.headers.get("Content-Type", ""))
                answer: dict[str, Any] = {"ok": True, "result": api.call(parts[1], params)}
                code = 200
            except ApiError as exc:
                code = exc.code
                answer = {"ok": False, "error_code": exc.code, "description": exc.description}
                if exc.retry_after is not None:
                    answer["parameters"] = {"retry_after": exc.retry_after}
            except ValueError:
                code, answer = (
                    400,
                    {
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: can't parse JSON",
                    },
                )
            payload = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)  # a poller that was killed or closed went away

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the test reads the calls from the state, not stderr

    return Handler


@pytest.fixture
def telegram_api() -> Iterator[BotApi]:
    """A Bot API server for one test (import this fixture into the test module)."""
    api = BotApi().start()
    try:
        yield api
    finally:
        api.stop()
