"""The Celery beat schedule of a fleet: supervisor tick, reclaim, host status.

Importable and overridable: ``build_schedule(settings)`` returns the mapping
that ``fleet_queue.celery_app`` installs as ``beat_schedule``. Run one beat per
fleet. Filled in by the dispatch issue.
"""

from __future__ import annotations

from typing import Any

from fleet_queue.settings import Settings


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat entries keyed by name; intervals come from settings."""
    return {}
