"""Nudge a supervisor tick at once, so dispatch does not wait for beat.

Debounced in the broker: while one nudged tick is queued, more nudges send
nothing (the queued tick will see their cards). A fleet whose broker is down
still works — the card is in the store and beat's next tick picks it up — so a
nudge never raises.
"""

from __future__ import annotations

import logging
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
    from fleet_queue.broker import redis_client

    try:
        client = redis_client(settings, timeout=0.5)
        if not client.set(
            redis_key(settings.tenant, NUDGE_KEY), reason or "1", nx=True, px=NUDGE_TTL_MS
        ):
            return False
        app = celery if celery is not None else _app()
        app.send_task(
            TICK_TASK,
            queue=control_queue(settings.tenant),
            expires=max(settings.tick_interval * 2, 10.0),
        )
        return True
    except (redis.RedisError, OSError) as exc:
        log.debug("nudge skipped: %s", exc)
        return False


def clear_nudge(settings: Settings, client: redis.Redis) -> None:
    """Called by a starting tick: later nudges must queue a new tick."""
    client.delete(redis_key(settings.tenant, NUDGE_KEY))


def _app() -> Any:
    from fleet_queue.celery_app import app

    return app
