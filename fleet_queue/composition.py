"""Where the parts are wired together: the card store with the nudge as its hook.

The store writes cards and events and knows nothing of Celery; the nudge sends
one tick message and knows nothing of the store. Whoever opens a store for a
fleet that dispatches — the Python API, the CLI, a Celery process's context —
opens it here, so a new card or a closed one queues a tick at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from fleet_queue.store import CardStore

ChangeHook = Callable[[str], None]
"""Called with the kind of change ("created", "done", ...) after the store commits."""


def open_card_store(settings: Settings, *, on_change: ChangeHook | None = None) -> CardStore:
    """The store of ``settings`` (schema migrated to head); changes that can free work
    nudge a supervisor tick, unless another ``on_change`` hook is given."""
    from fleet_queue.nudge import nudge_hook
    from fleet_queue.store import CardStore

    hook = on_change if on_change is not None else nudge_hook(settings)
    return CardStore.from_settings(settings, on_change=hook)
