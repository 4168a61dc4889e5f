"""A host worker types the claims its own tick makes for this host's agents.

Every worker of a tenant consumes ``fleet.control`` and runs the supervisor tick. When the
agent the tick just claimed for lives on this host, the pane is served by this very
process, and sending the delivery as a Celery message to its own queue cost a broker
round trip, the consumer's unacked bookkeeping and ack, three task events, the fence read
and the typed-once key: most of a card's CPU in the worker (docs/benchmarks.md, issue 19).
Here the claim goes to a thread of this process instead. There is nothing to fence: the
claim was made a moment ago under this token, in a transaction that read the fleet's pause
(this host's pause file is looked at again before typing, a ``stat``). The
lease's time is still checked just before the keys go (``workers.tasks.lease_deadline``),
and a pane found busy sends the message after all, whose retries wait within the lease
(``workers.tasks.wait_for_quiet_pane``).

A crash loses nothing: the claim is in the store with its lease, and the reclaim hands the
card on when the lease ends, as for a delivery message lost with its worker. A worker that
is stopping types nothing more: the claims still queued here go back to ``ready``.

Flower still lists each delivery: a ``task-received`` and a ``task-succeeded`` (or
``task-failed``) event under the worker's name, as for a consumed ``fleet.deliver_card``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from celery.signals import worker_shutting_down

from fleet_queue.errors import FleetError
from fleet_queue.local_tick import consumed_queues
from fleet_queue.pause import host_paused
from fleet_queue.queues import DELIVER_TASK
from fleet_queue.tasks import push_delivery

if TYPE_CHECKING:
    from collections.abc import Callable

    from celery.events import EventDispatcher

    from fleet_queue.cards import Card, Claim
    from fleet_queue.context import FleetContext

log = logging.getLogger(__name__)


class TypeCard(Protocol):
    """``workers.tasks.type_card``: passed in, so this module does not import the tasks."""

    def __call__(
        self,
        ctx: FleetContext,
        card: Card,
        token: int,
        agent: str,
        on_busy: Callable[[str], dict[str, Any]],
    ) -> dict[str, Any]: ...


class FlowerEvents:
    """The two task events Flower needs to list a delivery, from the worker's name."""

    def __init__(self, ctx: FleetContext, app: Any, hostname: str) -> None:
        self.ctx, self.app, self.hostname = ctx, app, hostname
        self._lock = threading.Lock()
        self._dispatcher: EventDispatcher | None = None

    def send(self, kind: str, **fields: Any) -> None:
        """Best effort: Flower missing one delivery is no reason to fail it."""
        try:
            with self._lock:
                if self._dispatcher is None:
                    self._dispatcher = self.app.events.Dispatcher(
                        self.app.connection_for_write(), hostname=self.hostname, enabled=True
                    )
                self._dispatcher.send(kind, **fields)
        except Exception as exc:  # the broker's own error types vary by transport
            log.debug("local delivery: event %s not sent: %s", kind, exc)
            self._dispatcher = None


class LocalDelivery:
    """``FleetContext.local_delivery`` of a host worker: claims for this host's agents."""

    def __init__(
        self,
        ctx: FleetContext,
        type_card: TypeCard,
        threads: int,
        events: FlowerEvents | None = None,
    ) -> None:
        self.ctx, self.type_card, self.events = ctx, type_card, events
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="fleet-local-delivery")
        self._stopping = threading.Event()

    def __call__(self, claim: Claim) -> bool:
        """Take ``claim`` (True), or leave it to the delivery message (False)."""
        if self._stopping.is_set() or claim.host != self.ctx.settings.host:
            return False
        try:
            self._executor.submit(self._deliver, claim)
        except RuntimeError:  # the executor shut down meanwhile
            return False
        return True

    def stop(self) -> None:
        """Type nothing more; claims still queued here are released by their threads."""
        self._stopping.set()

    def _deliver(self, claim: Claim) -> None:
        card, token, agent = claim.card, claim.token, claim.agent
        if self._stopping.is_set():
            self._release(claim, "the host worker stopped before typing it")
            return
        if host_paused(self.ctx.settings):  # paused since the tick's claim: as the fence does
            self._release(claim, f"host {self.ctx.settings.host} is paused")
            return
        task_id, started = str(uuid.uuid4()), time.monotonic()
        self._event("task-received", uuid=task_id, name=DELIVER_TASK,
                    args=repr((card.id, token, agent)), kwargs="{}", retries=0)  # fmt: skip
        try:
            result = self.type_card(
                self.ctx, card, token, agent, lambda why: self._to_queue(claim, why)
            )
        except Exception as exc:  # the claim stays in the store: its lease ends, reclaim
            log.exception("local delivery of %s token %s to %s failed", card.id, token, agent)
            self._event("task-failed", uuid=task_id, exception=repr(exc), traceback="")
            self._record(card.id, token, f"local delivery failed: {exc}; left to lease expiry")
            return
        runtime = time.monotonic() - started
        self._event("task-succeeded", uuid=task_id, result=repr(result), runtime=runtime)

    def _to_queue(self, claim: Claim, why: str) -> dict[str, Any]:
        """Nothing was typed: the message way, whose retries wait for the pane."""
        log.debug("local delivery of %s: %s; sent as a message", claim.card.id, why)
        push_delivery(self.ctx, claim)
        return {"queued": why}

    def _release(self, claim: Claim, why: str) -> None:
        try:
            self.ctx.store.release(claim.card.id, claim.token, why)
        except FleetError as exc:  # taken back meanwhile: its lease ends all the same
            log.warning("local delivery: could not release %s: %s", claim.card.id, exc)

    def _record(self, card_id: str, token: int, detail: str) -> None:
        try:
            self.ctx.store.record_event(card_id, "undelivered", agent=None, token=token,
                                        detail=detail)  # fmt: skip
        except FleetError:
            log.warning("local delivery: could not record %s", detail)

    def _event(self, kind: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.send(kind, **fields)


def start_local_delivery(ctx: FleetContext, consumer: Any, queue: str, type_card: TypeCard) -> None:
    """Serve ``ctx.local_delivery`` when this worker consumes its host's ``queue`` (a worker
    of other queues only, e.g. a control-only process, leaves deliveries to messages)."""
    if not ctx.settings.local_delivery:
        return
    if queue not in consumed_queues(consumer):
        log.info("local delivery: this worker does not consume %s; deliveries are messages", queue)
        return
    app = consumer.app
    hostname = str(getattr(consumer, "hostname", "") or app.conf.get("worker_hostname") or "")
    events = FlowerEvents(ctx, app, hostname) if ctx.settings.task_events else None
    threads = max(2, int(getattr(getattr(consumer, "pool", None), "limit", 0) or 0))
    local = LocalDelivery(ctx, type_card, threads, events)
    ctx.local_delivery = local

    def stopping(**_: Any) -> None:
        local.stop()

    worker_shutting_down.connect(stopping, weak=False)
    log.info("local delivery: this worker types its tick's claims for %s", ctx.settings.host)
