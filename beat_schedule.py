"""The Celery beat schedule of a fleet: supervisor tick, reclaim, host status.

Importable and overridable: ``build_schedule(settings)`` returns the mapping
that ``fleet_queue.celery_app`` installs as ``beat_schedule``; a deployment may
import it and change intervals or add entries. Run exactly one beat per fleet
(tenant): ``fleet beat`` takes a lock in the broker and refuses to start a
second one. Every entry expires, so a beat that ran while no worker listened
does not leave a pile of stale ticks behind.
"""

from __future__ import annotations

from typing import Any

from fleet_queue.queues import RECLAIM_TASK, REQUEST_STATUS_TASK, TICK_TASK, control_queue
from fleet_queue.settings import Settings


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat entries keyed by name; intervals come from settings."""
    queue = control_queue(settings.tenant)

    def entry(task: str, every: float) -> dict[str, Any]:
        return {
            "task": task,
            "schedule": every,
            "options": {"queue": queue, "expires": max(every, 1.0) * 2},
        }

    return {
        "fleet-supervisor-tick": entry(TICK_TASK, settings.tick_interval),
        "fleet-reclaim-expired": entry(RECLAIM_TASK, settings.reclaim_interval),
        "fleet-host-status": entry(REQUEST_STATUS_TASK, settings.host_status_interval),
    }
