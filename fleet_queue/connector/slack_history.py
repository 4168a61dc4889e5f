"""What the Slack adapter read, and reading on from there after a restart.

Slack sends an unacknowledged event again only a few times over some minutes; a
connector down longer would miss what was said meanwhile. So the adapter keeps, per
channel, the ``ts`` of the newest message it handed on (``run/chat/slack.json``, 0600)
and the threads active lately; after connecting it reads the channel's history and
those threads from there (``conversations.history``, ``conversations.replies``) and
hands on what it finds, oldest first. A message found both there and in a redelivered
envelope is stored once (its id is ``channel:ts``). On a channel's very first start the
cursor is set to now: the history from before is not taken as new messages.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from fleet_queue.connector.cursor import load_cursor, save_cursor

THREADS_KEPT = 20
"""Threads per channel looked into after a restart: the most recently active ones (a
reply in an older thread while the connector was down is read only if Slack redelivers)."""
PAGE = 200


@dataclass
class SlackCursor:
    path: Path
    channels: dict[str, str] = field(default_factory=dict)
    """Channel → the ts of the newest message handed on."""
    threads: dict[str, dict[str, str]] = field(default_factory=dict)
    """Channel → thread root ts → the ts of its newest message seen."""

    @classmethod
    def load(cls, path: Path) -> SlackCursor:
        data = load_cursor(path)
        return cls(path, dict(data.get("channels") or {}), dict(data.get("threads") or {}))

    def start(self, channels: list[str]) -> None:
        """Channels seen for the first time begin now, not at their history."""
        now = f"{time.time():.6f}"
        for channel in channels:
            self.channels.setdefault(channel, now)
        self.save()

    def seen(self, channel: str, ts: str, thread: str | None) -> None:
        if float(ts) > float(self.channels.get(channel, "0")):
            self.channels[channel] = ts
        threads = self.threads.setdefault(channel, {})
        threads[thread or ts] = ts
        for root in sorted(threads, key=lambda r: float(threads[r]))[:-THREADS_KEPT]:
            del threads[root]
        self.save()

    def save(self) -> None:
        save_cursor(self.path, {"channels": self.channels, "threads": self.threads})


async def missed(web: AsyncWebClient, cursor: SlackCursor, channel: str) -> list[dict[str, Any]]:
    """The channel's messages after its cursor (threads' replies too), oldest first."""
    since = cursor.channels.get(channel)
    if since is None:
        return []
    found: dict[str, dict[str, Any]] = {}
    roots = set(cursor.threads.get(channel, {}))
    async for message in pages(web.conversations_history, channel=channel, oldest=since):
        found[message["ts"]] = message
        if float(message.get("latest_reply") or 0) > float(since):
            roots.add(message["ts"])
    for root in sorted(roots, key=float):
        try:
            async for message in pages(
                web.conversations_replies, channel=channel, ts=root, oldest=since
            ):
                if float(message["ts"]) > float(since):
                    found[message["ts"]] = message
        except SlackApiError as exc:
            if exc.response.get("error") != "thread_not_found":  # a deleted thread
                raise
    return [{**found[ts], "channel": channel} for ts in sorted(found, key=float)]


async def pages(
    method: Callable[..., Awaitable[Any]], **args: Any
) -> AsyncIterator[dict[str, Any]]:
    """Every message of a paged ``conversations.*`` answer, following its cursor."""
    page_cursor: str | None = None
    while True:
        page = await method(**args, limit=PAGE, cursor=page_cursor)
        for message in page.get("messages") or []:
            if isinstance(message, dict) and isinstance(message.get("ts"), str):
                yield message
        page_cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if page_cursor is None:
            return
