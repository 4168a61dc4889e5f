"""Control tasks: the supervisor tick, the reclaim sweep, the host-status fan-out.

These run on any host worker of the tenant (queue ``fleet.control``) and never
touch tmux: they decide; host workers act.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery, Task

from fleet_queue.local_tick import serve_local_tick
from fleet_queue.nudge import task_message
from fleet_queue.queues import (
    DELIVER_TASK,
    HOST_STATUS_TASK,
    RECLAIM_TASK,
    REQUEST_STATUS_TASK,
    TICK_TASK,
    host_queue,
)
from fleet_queue.supervisor import run_tick
from fleet_queue.tick_lock import RoundEnd, TickLock

if TYPE_CHECKING:
    from fleet_queue.cards import Claim
    from fleet_queue.context import FleetContext

log = logging.getLogger(__name__)

TICK_LOCK_SECONDS = 10
"""Short, and renewed on every round: a worker killed mid-tick must not stall
dispatch for long. Claims are atomic in the store, so a slow tick outliving the
lock costs a wasted round, never a double claim."""


def fleet(task: Task) -> FleetContext:
    context: FleetContext = task.app.fleet
    return context


def send_delivery(ctx: FleetContext, claim: Claim) -> None:
    """Hand the claim to this process's own host worker when it serves the agent's host
    (``FleetContext.local_delivery``: no broker message at all), else ``push_delivery``."""
    local = ctx.local_delivery  # it declines a claim for another host
    if local is not None and local(claim):
        return
    push_delivery(ctx, claim)


def push_delivery(ctx: FleetContext, claim: Claim) -> None:
    """Route the delivery to the queue of the host that owns the agent's pane.

    One LPUSH of the task message as kombu's Redis transport stores it
    (``nudge.task_message``), on the tick's own Redis client: Celery's ``send_task``
    (producer, routing, message building, kombu's publish) cost about a third of the
    tick per card, for a message the worker consumes exactly the same way.
    """
    queue = host_queue(ctx.settings.tenant, claim.host)
    args = (claim.card.id, claim.token, claim.agent)
    message = task_message(DELIVER_TASK, queue, ctx.settings.lease_ttl, args)
    ctx.redis.lpush(queue, json.dumps(message))


def tick_once(task: Task) -> dict[str, Any]:
    return locked_tick(fleet(task))


def locked_tick(ctx: FleetContext) -> dict[str, Any]:
    """Run the tick under the tenant's lock (``fleet_queue.tick_lock``); a tick that finds
    the lock taken asks the running one to go round again instead of being lost."""
    lock = TickLock(ctx.redis, ctx.settings.tenant, TICK_LOCK_SECONDS)
    if not lock.take():
        return {"skipped": "another tick is running"}
    claimed: list[str] = []
    end: RoundEnd = "again"
    try:
        while end == "again":
            result = run_tick(ctx.store, ctx.roster, ctx.settings, lambda c: send_delivery(ctx, c))
            claimed += result.claims
            end = lock.round_done(stop=result.paused)
    finally:
        if end == "again":  # the round failed: let the next tick in
            with contextlib.suppress(redis.RedisError):
                lock.round_done(stop=True)
    if end == "lost":
        return {"skipped": "tick lock lost to a newer tick", "claimed": claimed}
    return {**result.as_dict(), "claimed": claimed}


def register_control_tasks(app: Celery) -> None:
    serve_local_tick(app, locked_tick)  # the worker's own closes tick here, no message

    # No task events for the tick (Flower): it runs once or more per card dispatched, and
    # its three events cost more broker publishes than its claim; deliveries keep theirs.
    @app.task(name=TICK_TASK, bind=True, send_events=False)
    def supervisor_tick(self: Task) -> dict[str, Any]:
        return tick_once(self)

    @app.task(name=RECLAIM_TASK, bind=True)
    def reclaim_expired(self: Task) -> dict[str, Any]:
        ctx = fleet(self)
        reclaimed = ctx.store.reclaim_expired()
        if reclaimed:
            log.info("reclaimed %d expired leases", len(reclaimed))
        return {"reclaimed": [r.card_id for r in reclaimed]}

    @app.task(name=REQUEST_STATUS_TASK, bind=True)
    def request_host_status(self: Task) -> dict[str, Any]:
        ctx = fleet(self)
        settings = ctx.settings
        hosts = sorted(
            {
                agent.host_or(settings.host)
                for agent in ctx.roster.agents
                if agent.tenant_or(settings.tenant) == settings.tenant
            }
        )
        # Spread over the interval, not all at once: ten hosts' rounds together took the
        # machine's every core for a second in five (the scale bench's p99, docs/benchmarks.md).
        spread = settings.host_status_interval / len(hosts) if hosts else 0.0
        for n, host in enumerate(hosts):
            self.app.send_task(
                HOST_STATUS_TASK,
                queue=host_queue(settings.tenant, host),
                expires=max(settings.host_status_interval * 2, 5.0),
                countdown=n * spread or None,
            )
        return {"hosts": hosts}
