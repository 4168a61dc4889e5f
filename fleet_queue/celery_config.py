"""Our whole Celery configuration, built from ``Settings`` in one place.

At-least-once delivery made safe by the fence: JSON only, late acks, reject on
worker lost, prefetch 1, a visibility timeout above the longest lease so Redis
never redelivers a message whose lease is still live.
"""

from __future__ import annotations

from typing import Any

from fleet_queue.broker_tls import celery_tls_options
from fleet_queue.queues import (
    RECLAIM_TASK,
    REQUEST_STATUS_TASK,
    TICK_TASK,
    control_queue,
)
from fleet_queue.settings import Settings

VISIBILITY_MARGIN = 300.0

HOST_TASK_MODULES = ("workers.tasks",)
"""Where the host tasks live, by name: the worker imports them (Celery's ``include``)
when it starts; ``fleet_queue`` itself never imports the host layer."""


def visibility_timeout(settings: Settings) -> float:
    return max(3600.0, settings.lease_ttl * 2 + VISIBILITY_MARGIN)


def celery_config(settings: Settings) -> dict[str, Any]:
    from beat_schedule import build_schedule

    control = control_queue(settings.tenant)
    return {
        # the URL without ssl_* parameters, and broker_use_ssl: rediss:// verified (broker_tls)
        **celery_tls_options(settings),
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout(settings),
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "retry_on_timeout": True,
            "health_check_interval": 10,
        },
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # The host worker runs a thread pool, which cannot kill a running job: with
        # cancel-on-loss on, a broker restart is an "Unrecoverable error" that ends
        # the worker. Tasks are short and fenced, so a redelivered one is dropped.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_default_queue": control,
        "task_create_missing_queues": True,
        "task_routes": {
            TICK_TASK: {"queue": control},
            RECLAIM_TASK: {"queue": control},
            REQUEST_STATUS_TASK: {"queue": control},
        },
        # Flower's task pages: one event per received, started and succeeded task. No
        # ``task-sent`` event: it cost one more broker publish per card in the tick, and a
        # task shows up in Flower when a worker receives it (docs/benchmarks.md).
        "task_send_sent_event": False,
        "worker_send_task_events": settings.task_events,
        "worker_hijack_root_logger": False,
        "beat_schedule": build_schedule(settings),
        "timezone": "UTC",
        "enable_utc": True,
    }
