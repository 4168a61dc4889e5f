"""The baseline: a minimal Celery app whose task does nothing but count itself done.

    celery -A bench.bare_app worker -Q bench.bare --pool threads --concurrency 4

Same broker, same pool, same reliability settings as the fleet's worker (JSON,
late acks, prefetch 1), none of the fleet's work. The task INCRs a Redis counter
and, when the count reaches ``BENCH_BARE_TARGET``, stores the time: "last done".
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

QUEUE = "bench.bare"
COUNTER = "bench:bare:done"
FINISHED = "bench:bare:finished"

app = Celery("bench_bare", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)
_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    return _client


def use_broker(url: str) -> None:
    """Point the app at another broker; drop pools that still hold the old one's sockets."""
    global _client
    app.close()
    app.conf.broker_url = url
    _client = None


def ping() -> bool:
    """True once a worker answers, asked on a connection of its own (see processes._ping)."""
    with app.connection_for_write() as conn:
        return bool(app.control.ping(timeout=0.5, connection=conn))


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop(target: int) -> None:
    if client().incr(COUNTER) == target:
        client().set(FINISHED, repr(time.time()))
