"""Nudge a supervisor tick at once, so dispatch does not wait for beat.

Debounced in the broker: while one nudged tick is queued, more nudges send
nothing (the queued tick will see their cards). A fleet whose broker is down
still works — the card is in the store and beat's next tick picks it up — so a
nudge never raises.

A process that runs no Celery app (``fleet card done``, a script's ``enqueue``)
sends the one tick message without building an app or importing Celery: it
pushes a message in Celery's task protocol 2 onto the control queue with
redis-py, exactly as kombu's Redis transport does, and the worker consumes it
like any other. A worker, which has its app built already, sends through it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis

from fleet_queue.queues import TICK_TASK, control_queue, redis_key
from fleet_queue.settings import Settings

log = logging.getLogger(__name__)

NUDGE_KEY = "nudge"
NUDGE_TTL_MS = 2000


class TaskSender(Protocol):
    """What a nudge needs of a Celery app that is already built."""

    def send_task(self, name: str, **options: Any) -> Any: ...


def tick_expiry(settings: Settings) -> float:
    """Seconds a nudged tick stays worth running: a later one will have replaced it."""
    return max(settings.tick_interval * 2, 10.0)


def nudge_tick(settings: Settings, celery: TaskSender | None = None, reason: str = "") -> bool:
    """Queue one supervisor tick unless one is already queued; True when sent.

    ``celery``: the caller's own app, when it has one (a worker): its warm connection
    pool sends the message and Flower sees the sent event.
    """
    if not settings.nudge:
        return False
    try:
        client = _client_for(settings)
        if not client.set(
            redis_key(settings.tenant, NUDGE_KEY), reason or "1", nx=True, px=NUDGE_TTL_MS
        ):
            return False
        if celery is not None:
            queue = control_queue(settings.tenant)
            celery.send_task(TICK_TASK, queue=queue, expires=tick_expiry(settings))
        else:
            send_tick(settings, client)
        return True
    except (redis.RedisError, OSError) as exc:
        log.debug("nudge skipped: %s", exc)
        return False


def send_tick(settings: Settings, client: redis.Redis | None = None) -> None:
    """Push one tick message onto the control queue, no debounce (``fleet tick``)."""
    queue = control_queue(settings.tenant)
    message = task_message(TICK_TASK, queue, tick_expiry(settings))
    (client or _client_for(settings)).lpush(queue, json.dumps(message))


def task_message(
    name: str, queue: str, expires_in: float, args: tuple[Any, ...] = ()
) -> dict[str, Any]:
    """A task message as kombu's Redis transport stores it (protocol 2, JSON body).

    What Celery's ``amqp.as_task_v2`` builds and kombu's virtual channel adds on
    publish to the default exchange (body encoding, delivery tag, delivery info);
    priority 0, so the list is the queue's own name.
    """
    task_id = str(uuid.uuid4())
    expires = (datetime.now(UTC) + timedelta(seconds=expires_in)).isoformat()
    body = json.dumps([list(args), {}, _NO_CANVAS])
    return {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
            "expires": expires, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": repr(args), "kwargsrepr": "{}", "origin": _origin(),
            "ignore_result": True, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
            "expiration": str(int(expires_in * 1000)),
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }  # fmt: skip


_NO_CANVAS = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def _origin() -> str:
    """Celery's ``anon_nodename``: who sent it, for ``celery events`` and Flower."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


NUDGE_KINDS = frozenset(
    {
        "created",
        "done",
        "failed",
        "released",
        "reclaimed",
        "unblocked",
        "linked",
        "resumed",
        "agent_resumed",
    }
)
"""Store changes after which a tick may find something new to dispatch."""


def nudge_hook(settings: Settings) -> Callable[[str], None]:
    """The store's ``on_change`` hook: nudge on the kinds that can free work or agents."""

    def hook(kind: str) -> None:
        if kind in NUDGE_KINDS:
            nudge_tick(settings, reason=kind)

    return hook


_clients: dict[str, redis.Redis] = {}


def _client_for(settings: Settings) -> redis.Redis:
    """One fail-fast Redis client per broker, reused: a new client per nudge paid for a
    new connection and its handshake on every card created or closed. redis-py's pool is
    thread-safe and starts afresh in a forked child."""
    url = settings.effective_broker_url
    if url not in _clients:
        from fleet_queue.broker import redis_client

        _clients[url] = redis_client(settings, timeout=0.5, fail_fast=True)
    return _clients[url]
