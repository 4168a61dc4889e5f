"""Talking to running workers (ping) without building the fleet's app.

A ping needs the broker settings and Celery's control client, not the fleet's
tasks, store or host layer: ``fleet doctor`` and ``fleet up`` ask here.
"""

from __future__ import annotations

import time
from typing import Any

from fleet_queue.queues import node_name
from fleet_queue.settings import Settings

PING_TIMEOUT = 0.5


def control_app(settings: Settings) -> Any:
    """A Celery app with the fleet's broker settings and no tasks: a control client."""
    from celery import Celery

    from fleet_queue.celery_config import celery_config

    app = Celery("fleet_queue.control", set_as_current=False)
    app.config_from_object(celery_config(settings))
    return app


def ping_node(app: Any, node: str) -> bool:
    """One ping on a connection of its own.

    Celery apps on one broker URL share kombu's global connection pool; after a
    broker restart a pooled connection's reply consumer never reads again, so a
    long-lived caller (a test run, ``fleet up``) would wait for a reply forever.
    """
    conn = app.connection_for_write()
    try:
        with conn:
            return bool(app.control.ping(destination=[node], timeout=PING_TIMEOUT, connection=conn))
    except (OSError, *conn.connection_errors):
        time.sleep(0.2)
        return False


def worker_answers(settings: Settings) -> bool:
    """True when this host's worker answers one ping."""
    return ping_node(control_app(settings), node_name(settings.tenant, settings.host))


def wait_for_worker(settings: Settings, timeout: float = 30.0) -> bool:
    """True once the host worker answers a ping on the broker."""
    app = control_app(settings)
    node = node_name(settings.tenant, settings.host)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping_node(app, node):
            return True
    return False
