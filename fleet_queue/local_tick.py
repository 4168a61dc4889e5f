"""A worker ticks in a thread of its own when a change it committed can free work.

An agent closes its card through its host worker's agent socket (``fleet card done``),
and the worker's store says so to its change hook. The hook used to nudge: one tick
message to ``fleet.control``, consumed by a worker (most often this one) with Celery's
fixed cost per message, before the claim and the next delivery could start. Here the
hook wakes this worker's tick thread instead, which runs the same tick under the same
tenant lock (``fleet_queue.tick_lock``): a tick running elsewhere is asked to go round
again, as a nudged one would. Beat's ticks and the nudges of other processes (the CLI,
scripts) still arrive as messages.

Changes come faster than ticks: while a tick runs, any number of wake-ups make one more
round, never a queue of them.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from fleet_queue.nudge import NUDGE_KINDS, nudge_tick

if TYPE_CHECKING:
    from collections.abc import Callable

    from fleet_queue.context import FleetContext

log = logging.getLogger(__name__)


class LocalTick:
    """``FleetContext.change_hook`` of a worker that consumes its tenant's control queue."""

    def __init__(self, ctx: FleetContext, tick: Callable[[FleetContext], dict[str, Any]]) -> None:
        self.ctx, self.tick = ctx, tick
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleet-local-tick", daemon=True)

    def start(self) -> LocalTick:
        self._thread.start()
        return self

    def __call__(self, kind: str) -> None:
        if kind not in NUDGE_KINDS:
            return
        if self._stopping.is_set():  # a stopping worker leaves the tick to the others
            nudge_tick(self.ctx.settings, reason=kind)
            return
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            try:
                result = self.tick(self.ctx)
            except Exception:  # the store or broker failed us: beat's next tick retries
                log.exception("local tick failed; the next nudge or beat's tick runs it")
                nudge_tick(self.ctx.settings, reason="local tick failed")
                continue
            if result.get("claimed"):
                log.info("local tick: claimed %s", result["claimed"])


def consumed_queues(consumer: Any) -> set[str]:
    """The queues a worker's consumer (``worker_ready``'s sender) takes tasks from."""
    task_consumer = getattr(consumer, "task_consumer", None)
    return {queue.name for queue in getattr(task_consumer, "queues", None) or ()}


def serve_local_tick(app: Any, tick: Callable[[FleetContext], dict[str, Any]]) -> None:
    """When ``app``'s worker is ready and consumes its tenant's control queue, its store's
    changes wake a ``LocalTick`` (``FLEET_LOCAL_TICK``; not with ``FLEET_NUDGE`` off, which
    leaves every tick to beat)."""
    from celery.signals import worker_ready, worker_shutting_down

    from fleet_queue.queues import control_queue

    def ready(sender: Any = None, **_: Any) -> None:
        ctx: FleetContext | None = getattr(app, "fleet", None)
        if getattr(sender, "app", None) is not app or ctx is None:
            return
        if not (ctx.settings.local_tick and ctx.settings.nudge):  # FLEET_NUDGE=0: beat only
            return
        if control_queue(ctx.settings.tenant) not in consumed_queues(sender):
            return
        local = LocalTick(ctx, tick).start()
        ctx.change_hook = local
        worker_shutting_down.connect(lambda **_: local.stop(), weak=False)
        log.info("local tick: this worker ticks when its own changes free work")

    worker_ready.connect(ready, weak=False)
