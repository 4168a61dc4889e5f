"""Nudge a supervisor tick at once, so dispatch does not wait for beat.

Debounced in the broker: while one nudged tick is queued, more nudges send
nothing (the queued tick will see their cards). A fleet whose broker is down
still works — the card is in the store and beat's next tick picks it up — so a
nudge never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from fleet_queue.queues import TICK_TASK, control_queue, redis_key
from fleet_queue.settings import Settings

log = logging.getLogger(__name__)

NUDGE_KEY = "nudge"
NUDGE_TTL_MS = 2000


def nudge_tick(settings: Settings, celery: Any | None = None, reason: str = "") -> bool:
    """Queue one supervisor tick unless one is already queued; True when sent."""
    if not settings.nudge:
        return False
    try:
        client = _client_for(settings)
        if not client.set(
            redis_key(settings.tenant, NUDGE_KEY), reason or "1", nx=True, px=NUDGE_TTL_MS
        ):
            return False
        app = celery if celery is not None else app_for(settings)
        app.send_task(
            TICK_TASK,
            queue=control_queue(settings.tenant),
            expires=max(settings.tick_interval * 2, 10.0),
        )
        return True
    except (redis.RedisError, OSError) as exc:
        log.debug("nudge skipped: %s", exc)
        return False


NUDGE_KINDS = frozenset(
    {"created", "done", "failed", "released", "reclaimed", "unblocked", "linked", "resumed"}
)
"""Store changes after which a tick may find something new to dispatch."""


def nudge_hook(settings: Settings) -> Callable[[str], None]:
    """The store's ``on_change`` hook: nudge on the kinds that can free work or agents."""

    def hook(kind: str) -> None:
        if kind in NUDGE_KINDS:
            nudge_tick(settings, reason=kind)

    return hook


def clear_nudge(settings: Settings, client: redis.Redis) -> None:
    """Called by a starting tick: later nudges must queue a new tick."""
    client.delete(redis_key(settings.tenant, NUDGE_KEY))


_apps: dict[tuple[str, str], Any] = {}
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


def app_for(settings: Settings) -> Any:
    """A Celery app for these settings, reused: building one costs milliseconds."""
    key = (settings.effective_broker_url, settings.tenant)
    if key not in _apps:
        from fleet_queue.celery_app import make_celery

        _apps[key] = make_celery(settings)
    return _apps[key]
