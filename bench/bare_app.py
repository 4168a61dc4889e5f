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
NOOP = "bench.noop"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def make_app(broker_url: str) -> Celery:
    """The bare app on ``broker_url``: our reliability settings, a task that does nothing."""
    bare = Celery("bench_bare", broker=broker_url, set_as_current=False)
    bare.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        worker_hijack_root_logger=False,
    )
    bare.task(name=NOOP)(noop)
    return bare


def noop(target: int) -> None:
    if client().incr(COUNTER) == target:
        client().set(FINISHED, repr(time.time()))


_client: redis.Redis | None = None


def client() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
    return _client


_apps: dict[str, Celery] = {}


def app_for(broker_url: str) -> Celery:
    """One app per broker for the sending side: an app's pools stay bound to the broker
    it first talked to (kombu keeps them), so a new broker gets a new app."""
    if broker_url not in _apps:
        _apps[broker_url] = make_app(broker_url)
    return _apps[broker_url]


def ping(broker_url: str) -> bool:
    """True once a bare worker answers, asked on a connection of its own."""
    sender = app_for(broker_url)
    with sender.connection_for_write() as conn:
        return bool(sender.control.ping(timeout=0.5, connection=conn))


def send_noop(broker_url: str, target: int) -> None:
    app_for(broker_url).tasks[NOOP].apply_async(args=(target,))


app = make_app(os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
"""The worker side: ``celery -A bench.bare_app worker`` (broker from BENCH_BROKER_URL)."""
