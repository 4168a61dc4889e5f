"""One interface for every chat network, and what a chat message is in the store.

An adapter receives messages (``run`` calls ``on_message`` for each one, in order, and
returns only when closed) and sends replies threaded to the message that asked. The
service above it never sees a network's own types, so Telegram, Slack or Discord fit
the same loop: an adapter is a ``ChatAdapter`` and nothing else.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fleet_queue.errors import ConfigError, FleetError


class ChatState(enum.StrEnum):
    """Where a chat message is on its way to an answer (``chat_messages.state``)."""

    QUEUED = "queued"
    """Stored, not yet typed: the orchestrator was busy, or the connector is catching up."""
    DELIVERED = "delivered"
    """Typed and accepted (the verified delivery path): its turn's reply is awaited."""
    ANSWERED = "answered"
    """The reply was sent to the room; never sent again."""
    FAILED = "failed"
    """Given up (``reason`` says why); the room was told."""


OPEN_STATES = (ChatState.QUEUED, ChatState.DELIVERED)


@dataclass(frozen=True)
class ChatMessage:
    """A message as an adapter received it."""

    network: str
    room: str
    sender: str
    event_id: str
    """The network's own id of the message: a message seen twice is stored once."""
    text: str
    thread_root: str | None = None
    """The thread the message was posted in, if any: the reply joins that thread."""


@dataclass(frozen=True)
class ChatRecord:
    """A stored chat message (one row of ``chat_messages``)."""

    id: int
    network: str
    room: str
    sender: str
    event_id: str
    text: str
    agent: str
    state: ChatState
    thread_root: str | None
    turn_id: str | None
    prompt_sha: str | None
    """sha256 of exactly the text typed (label included): how the turn's reply is found."""
    reply: str | None
    reason: str | None
    created_at: float
    delivered_at: float | None
    answered_at: float | None


class ChatSendError(FleetError):
    """The network failed a send for a passing reason (unreachable, rate limited, a 5xx,
    not connected yet): the message stays delivered and the reply is tried again, up to
    ``FLEET_CHAT_REPLY_RETRY`` seconds."""


class ChatRefusedError(ChatSendError):
    """The network refused a send for good (the channel is gone, the bot was removed or
    may not post there, the message is malformed): trying again cannot help, so the
    message is failed at once instead of retried forever."""


class ChatSecretError(ConfigError):
    """A secret the network needs is missing, of the wrong kind, or refused by it: the
    fix is in the environment (``FLEET_HOME/fleet.env``), not in the roster."""


OnMessage = Callable[[ChatMessage], Awaitable[None]]
T = TypeVar("T")


async def unless_closed(waiting: Awaitable[T], closed: asyncio.Event) -> T | None:
    """``waiting``'s result, or None when ``closed`` is set first (``waiting`` is then
    cancelled): how an adapter waits for its connection or its next event and still
    ends at once on ``close``."""
    task = asyncio.ensure_future(waiting)
    stop = asyncio.ensure_future(closed.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
    return task.result() if task.done() and not task.cancelled() else None


class ChatAdapter(Protocol):
    """One chat network. Secrets come from the environment, never the roster."""

    network: str

    async def run(self, on_message: OnMessage) -> None:
        """Connect, then call ``on_message`` for each new message until ``close``.

        A message is acknowledged to the network's cursor only after ``on_message``
        returned (it is stored by then), so a crash re-reads it and the store keeps one.
        """
        ...

    async def reply(self, record: ChatRecord, text: str) -> None:
        """Send ``text`` threaded to ``record``'s message. Sending the same record twice
        (a restart between send and the store's mark) must not post twice where the network
        lets us say so (Matrix: the transaction id is the record's id). Called beside
        ``run`` from the start (a restart finds replies recorded while it was down), it
        waits until ``run`` has connected. A passing failure is a ``ChatSendError`` (tried
        again), a refusal for good a ``ChatRefusedError`` (the message is failed)."""
        ...

    async def notice(self, room: str, text: str, notice_id: str) -> None:
        """A fleet notice to a room (not a reply to anyone). ``notice_id`` is the same
        each time this notice is sent again (``notices.notice_id``: the room and the newest
        event it tells of): where the network lets us say so, a notice sent again after a
        crash or a lost answer is not posted twice."""
        ...

    async def check(self) -> str:
        """Authenticate once, receiving nothing, and say who the bot is (``fleet connector
        check --online``). ``ChatSecretError`` when the network refuses the secret,
        ``ChatSendError`` when it cannot be reached or answers otherwise. The caller
        closes the adapter after."""
        ...

    async def close(self) -> None: ...
