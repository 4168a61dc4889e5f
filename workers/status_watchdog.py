"""Keep this host's agent rows fresh when beat does not ask for them.

Beat sends ``request_host_status`` every interval and that fans out one
``collect_host_status`` to each host's queue. When beat is down, the rows age, the
tick stops trusting them after ``STALE_HOST_INTERVALS`` and nothing is dispatched
any more, even though every card creation and completion still nudges a tick. The
watchdog is a thread in the host worker: once per interval it looks at the age of
its host's rows in the store and, when beat has let them age past
``OVERDUE_INTERVALS``, sends ``collect_host_status`` to its own queue, so the
status is collected by the pool like any other time. With beat running it sends
nothing. It reads the store, not process memory, so it holds for any pool.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from fleet_queue.queues import HOST_STATUS_TASK, host_queue
from fleet_queue.settings import Settings

log = logging.getLogger(__name__)

OVERDUE_INTERVALS = 2.5
"""Beat refreshes every interval; past this many the watchdog collects on its own.

Below ``STALE_HOST_INTERVALS`` (4), so the tick never sees the rows go stale."""


def newest_update(app: Any, settings: Settings) -> datetime | None:
    """When this host's agent rows were last written, or None when there are none."""
    rows = app.fleet.store.agent_statuses(host=settings.host)
    stamps = [row.updated_at for row in rows if row.updated_at is not None]
    return max(stamps, default=None)


def is_overdue(newest: datetime | None, now: datetime, settings: Settings) -> bool:
    if newest is None:
        return True
    return (now - newest).total_seconds() > settings.host_status_interval * OVERDUE_INTERVALS


def check_once(app: Any) -> bool:
    """Send one ``collect_host_status`` to this host when its rows are overdue."""
    settings: Settings = app.fleet.settings
    store = app.fleet.store
    if not app.fleet.roster.agents_on(settings.host, settings.tenant):
        return False  # nothing to report: no row will ever be fresh
    if not is_overdue(newest_update(app, settings), store.now(), settings):
        return False
    app.send_task(HOST_STATUS_TASK, queue=host_queue(settings.tenant, settings.host))
    return True


def start_status_watchdog(app: Any) -> threading.Event:
    """Start the watchdog thread; set the returned event to stop it."""
    stop = threading.Event()
    interval = max(app.fleet.settings.host_status_interval, 0.5)

    def run() -> None:
        while not stop.wait(interval):
            try:
                if check_once(app):
                    log.info("host status overdue (is beat running?): collecting it here")
            except Exception:  # store or broker down: try again next interval
                log.warning("host status watchdog could not check", exc_info=True)

    threading.Thread(target=run, name="fleet-status-watchdog", daemon=True).start()
    return stop
