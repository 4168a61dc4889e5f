"""What a Celery process of the fleet holds: settings, store, roster, broker client.

One ``FleetContext`` hangs off the Celery app (``app.fleet``) instead of module
globals, so tests can build apps for several fleets in one process. The store
and clients are made lazily and remade after a fork.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleet_queue.roster import Roster, load_roster
from fleet_queue.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis

    from fleet_queue.cards import Claim
    from fleet_queue.store import CardStore


class FleetContext:
    """Lazily built, fork-aware handles for one fleet (tenant) in one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._store: CardStore | None = None
        self._redis: redis.Redis | None = None
        self._roster: Roster | None = None
        self._roster_mtime: float | None = None
        self.extras: dict[str, Any] = {}
        self.change_hook: Callable[[str], None] | None = None
        """What the store's committed changes wake (``fleet_queue.local_tick``); None: the
        nudge, one tick message (``fleet_queue.nudge``)."""
        self._nudge: Callable[[str], None] | None = None
        self.local_delivery: Callable[[Claim], bool] | None = None
        """Set by a host worker that serves this host's queue (``workers.local_delivery``):
        takes a claim for one of this host's agents and types it in this process (True),
        or declines it (False) and the tick sends the delivery message."""

    def _after_fork(self) -> None:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            if self._store is not None:
                self._store.close()
            self._store = None
            self._redis = None
            self.extras.clear()
            self.local_delivery = None
            self.change_hook = None

    @property
    def store(self) -> CardStore:
        with self._lock:
            self._after_fork()
            if self._store is None:
                from fleet_queue.composition import open_card_store

                self._store = open_card_store(self.settings, on_change=self._changed)
            return self._store

    def _changed(self, kind: str) -> None:
        hook = self.change_hook
        if hook is None:
            if self._nudge is None:
                from fleet_queue.nudge import nudge_hook

                self._nudge = nudge_hook(self.settings)
            hook = self._nudge
        hook(kind)

    @property
    def redis(self) -> redis.Redis:
        with self._lock:
            self._after_fork()
            if self._redis is None:
                from fleet_queue.broker import redis_client

                self._redis = redis_client(self.settings)
            return self._redis

    @property
    def roster(self) -> Roster:
        """The roster, reread when the file changes (``fleet agent add`` while running)."""
        path: Path = self.settings.effective_roster_path
        mtime = path.stat().st_mtime if path.exists() else None
        with self._lock:
            if self._roster is None or mtime != self._roster_mtime:
                self._roster = load_roster(path)
                self._roster_mtime = mtime
            return self._roster

    def dispose(self) -> None:
        """Drop pooled connections (a forked child must not share its parent's)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None
            self._redis = None
