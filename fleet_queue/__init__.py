"""fleet-queue: a fleet of always-on AI agents in tmux, fed through Celery.

The Python API for scripts is re-exported here lazily so that importing the
package (e.g. by ``celery -A fleet_queue.celery_app``) stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["Backlog", "__version__", "enqueue"]


def __getattr__(name: str) -> Any:
    if name in {"Backlog", "enqueue"}:
        from fleet_queue import api

        return getattr(api, name)
    raise AttributeError(name)
