"""The Celery app of the fleet: ``celery -A fleet_queue.celery_app worker|beat|inspect|flower``.

Built from ``Settings`` (``FLEET_*``) when this module is imported, which only
the Celery command line (and a test that wants a whole app) does: a module that
needs a queue name or a setting imports ``queues``/``celery_config``, and one
that sends a tick uses ``nudge`` (no app). ``make_celery(settings)`` builds
another app for tests or for a second tenant in one process. The host tasks are
found the Celery way, by ``include`` (``celery_config.HOST_TASK_MODULES``),
when the worker starts, so nothing here imports the host layer. The fleet's
handles hang off ``app.fleet``; forked pool children drop inherited connections.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import beat_init, worker_process_init

from fleet_queue.broker_clients import reuse_channel_clients
from fleet_queue.celery_config import HOST_TASK_MODULES, celery_config
from fleet_queue.context import FleetContext
from fleet_queue.private import private_umask, warn_open_home
from fleet_queue.queues import redis_key
from fleet_queue.settings import Settings, load_settings
from fleet_queue.tasks import register_control_tasks

log = logging.getLogger(__name__)

BEAT_LOCK_SECONDS = 30


def make_celery(settings: Settings) -> Celery:
    reuse_channel_clients()  # one redis-py client per kombu channel (broker_clients)
    app = Celery("fleet_queue", set_as_current=False, include=list(HOST_TASK_MODULES))
    app.config_from_object(celery_config(settings))
    app.fleet = FleetContext(settings)
    register_control_tasks(app)
    return app


private_umask()  # worker and beat: logs, schedule, heartbeats and the tmux server stay private
app = make_celery(load_settings())
warn_open_home(app.fleet.settings.home)


def _app_of(sender: Any) -> Any:
    """The app a signal is about (tests build several); ours by default."""
    candidate = getattr(sender, "app", None)
    return candidate if hasattr(candidate, "fleet") else app


@worker_process_init.connect
def _dispose_after_fork(**_: Any) -> None:
    """A forked pool child must not reuse its parent's database or Redis sockets."""
    app.fleet.dispose()


@beat_init.connect
def _one_beat_per_fleet(sender: Any = None, **_: Any) -> None:
    """Refuse to be a second beat of this fleet: two beats double every tick."""
    current = _app_of(sender)
    settings: Settings = current.fleet.settings
    client = current.fleet.redis
    lock = client.lock(
        redis_key(settings.tenant, "beat"), timeout=BEAT_LOCK_SECONDS, thread_local=False
    )
    if not lock.acquire(blocking=False):
        log.error("another beat already runs for tenant %s; exiting", settings.tenant)
        raise SystemExit(3)
    stop = threading.Event()

    def keep() -> None:
        while not stop.wait(BEAT_LOCK_SECONDS / 3):
            try:
                lock.extend(BEAT_LOCK_SECONDS, replace_ttl=True)
            except Exception:  # the broker may restart; re-take the lock when it is back
                log.warning("beat lock could not be extended", exc_info=True)
                try:
                    lock.acquire(blocking=False)
                except Exception:
                    log.debug("beat lock re-take failed", exc_info=True)

    threading.Thread(target=keep, name="fleet-beat-lock", daemon=True).start()
