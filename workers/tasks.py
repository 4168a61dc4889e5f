"""Host tasks: deliver a claimed card into a local pane; report local agent status.

A host worker consumes its own queue ``fleet.host.<host>``; only it touches this
host's tmux server. Every delivery passes the fence first — a redelivered or
stale Celery message is dropped with an event, never typed twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task
from celery.signals import worker_ready

from fleet_queue.card_text import render_card
from fleet_queue.errors import (
    AgentBusyError,
    DeliveryError,
    FleetError,
)
from fleet_queue.nudge import nudge_tick
from fleet_queue.pause import dispatch_allowed, host_paused
from fleet_queue.queues import DELIVER_TASK, HOST_STATUS_TASK, host_queue, redis_key
from workers.agent_socket import start_agent_socket
from workers.heartbeat import utcnow
from workers.local_delivery import start_local_delivery
from workers.status_watchdog import start_status_watchdog
from workers.supervision import brief_owed

if TYPE_CHECKING:
    from collections.abc import Callable

    from fleet_queue.cards import AgentStatus, Card, EventKind
    from fleet_queue.context import FleetContext
    from workers.delivery import Deliverer, DeliveryReceipt
    from workers.probe import AgentProbe
    from workers.supervision import Action

log = logging.getLogger(__name__)


def _ctx(task: Task) -> FleetContext:
    context: FleetContext = task.app.fleet
    return context


DISPATCH_BUSY_WINDOW = 0.5
"""A pane quiet this long after its agent closed a card has settled; the lease, not the
output, says the agent is free, so dispatch waits less than an operator's send does."""


def deliverer_for(ctx: FleetContext) -> Deliverer:
    """One Deliverer per process (its control-mode client is reused), renewed with the roster."""
    from workers.delivery import Deliverer

    roster = ctx.roster
    current = ctx.extras.get("deliverer")
    if current is None or ctx.extras.get("deliverer_roster") is not roster:
        if current is not None:
            current.close()
        current = Deliverer(
            ctx.settings, roster, busy_window=DISPATCH_BUSY_WINDOW, trust_native_idle=True
        )
        ctx.extras["deliverer"] = current
        ctx.extras["deliverer_roster"] = roster
    deliverer: Deliverer = current
    return deliverer


def first_typing(ctx: FleetContext, card_id: str, token: int) -> bool:
    """At most one typing per (card, token), even when Celery redelivers the message."""
    key = redis_key(ctx.settings.tenant, f"typed:{card_id}:{token}")
    ttl = int(max(ctx.settings.lease_ttl * 2, 60))
    return bool(ctx.redis.set(key, 1, nx=True, ex=ttl))


def deliver(task: Task, card_id: str, token: int, agent: str) -> dict[str, Any]:
    ctx = _ctx(task)
    store = ctx.store
    # the fence: token, owner, not yet typed, and lease time left, with the pause flag
    gate = store.begin_delivery(card_id, token, agent, lease_margin(ctx))
    card, pause, why = gate.card, gate.pause, gate.refusal
    if card is None:
        _drop(ctx, card_id, token, agent, why)
        return {"dropped": why}
    allowed, why = dispatch_allowed(store, ctx.settings, pause)
    held = gate.held if allowed else None  # the agent's own pause, read with the card
    if held is not None:
        allowed, why = False, f"agent {agent} is paused {held}"
    if not allowed:
        store.release(card_id, token, why)
        return {"released": why}
    if not first_typing(ctx, card_id, token):
        _drop(ctx, card_id, token, agent, "this token was already typed once")
        return {"dropped": "already typed"}
    return type_card(
        ctx, card, token, agent, lambda why: wait_for_quiet_pane(task, ctx, card, token, why)
    )


def type_card(
    ctx: FleetContext,
    card: Card,
    token: int,
    agent: str,
    on_busy: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    """Type a card its fence let through (or its claim just made) and write ``delivered``;
    a busy pane is ``on_busy``'s (nothing was typed), a failed delivery releases the card."""
    text = render_card(card, token, card.acceptance)
    try:
        if brief_owed(ctx.settings, agent):  # a pane restarted since the claim: brief first
            raise AgentBusyError(f"agent {agent} has not had its brief yet")
        receipt = deliver_when_free(ctx, agent, text, lease_deadline(ctx, card))
    except AgentBusyError as exc:
        return on_busy(str(exc))
    except DeliveryError as exc:
        after = ctx.store.release_undelivered(card.id, token, str(exc))
        if after.status == "blocked":  # failed max_attempts times in a row: parked
            return {"blocked": after.reason}
        return {"released": str(exc)}
    record_delivered(ctx, card.id, token, agent)
    return {"delivered": card.id, "agent": agent, "token": token, "ms": receipt.ms}


QUICK_WAIT_SECONDS = 0.3
QUICK_POLL_SECONDS = 0.01


DELIVERY_MARGIN = 6.0
"""Seconds of lease kept back when waiting for a busy pane: one delivery types and
verifies within verify's 5 s, and must end before the lease does."""


def lease_margin(ctx: FleetContext) -> float:
    """The margin, never more than a quarter of the lease (short test leases)."""
    return min(DELIVERY_MARGIN, ctx.settings.lease_ttl / 4)


def lease_deadline(ctx: FleetContext, card: Card) -> float:
    """``time.monotonic()`` by which waiting for the pane must stop: the lease's end less
    the margin (by this host's clock; the store's own fence checks its clock again)."""
    if card.lease_expires_at is None:
        return time.monotonic()
    left = (card.lease_expires_at - utcnow()).total_seconds()
    return time.monotonic() + left - lease_margin(ctx)


def deliver_when_free(
    ctx: FleetContext, agent: str, text: str, until: float | None = None
) -> DeliveryReceipt:
    """Deliver, waiting a moment in this thread for a pane that is about to be free.

    The tick gives an agent its next card as soon as the last one is closed, which
    is a few milliseconds before the agent's heartbeat says ``ok``. Polling the
    heartbeat here costs one file read and one tmux query per try; a Celery retry
    (``wait_for_quiet_pane``) costs a broker round trip and at least 100 ms.
    """
    deadline = time.monotonic() + QUICK_WAIT_SECONDS
    if until is not None:
        deadline = min(deadline, until)
    while True:
        try:  # `until` is checked again just before the keys go: a stopped worker wakes late
            return deliverer_for(ctx).deliver(
                agent, text, source=f"{ctx.settings.host}:fleet", verify=True, not_after=until
            )
        except AgentBusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(QUICK_POLL_SECONDS)


def record_delivered(ctx: FleetContext, card_id: str, token: int, agent: str) -> None:
    """``delivered_at`` and the ``delivered`` event, even for an agent faster than us.

    A quick agent can close its card (``fleet card done``) between our verify and this
    write; the lease is gone then, but the text did reach the pane under this token,
    so the audit trail still says so.
    """
    ctx.store.record_delivery(card_id, token, agent)  # one write transaction either way


BUSY_RETRY_SECONDS = 0.1
BUSY_RETRY_BUDGET = 60.0


def wait_for_quiet_pane(
    task: Task, ctx: FleetContext, card: Card, token: int, why: str
) -> dict[str, Any]:
    """Nothing was typed: keep the claim and try again shortly, within the lease.

    An agent that just closed its last card is still printing; that is no reason
    to give the card up. The budget is wall-clock: at most ``BUSY_RETRY_BUDGET`` (and
    half the lease) since the claim, and never past the lease's end less the delivery
    margin, so no retry can start typing as the lease runs out. A pane still busy
    then is an agent that did not take its card: the lease is left to expire, and
    the reclaim counts the attempt like any other (a hung agent's card ends
    ``failed`` at max attempts).
    """
    ctx.redis.delete(redis_key(ctx.settings.tenant, f"typed:{card.id}:{token}"))
    now = utcnow()
    ends = []
    if card.lease_expires_at is not None:
        ends.append(card.lease_expires_at - timedelta(seconds=lease_margin(ctx)))
    if card.claimed_at is not None:
        budget = min(BUSY_RETRY_BUDGET, ctx.settings.lease_ttl * 0.5)
        ends.append(card.claimed_at + timedelta(seconds=budget))
    if ends and now + timedelta(seconds=BUSY_RETRY_SECONDS) < min(ends):
        raise task.retry(countdown=BUSY_RETRY_SECONDS)
    ctx.store.record_event(
        card.id, "undelivered", agent=None, token=token, detail=f"{why}; left to lease expiry"
    )
    return {"undelivered": why}


def _drop(ctx: FleetContext, card_id: str, token: int, agent: str, why: str) -> None:
    log.info("dropped delivery of %s token %s to %s: %s", card_id, token, agent, why)
    try:
        ctx.store.record_event(card_id, "dropped", agent=agent, token=token, detail=why)
    except FleetError:
        log.warning("could not record the drop of %s", card_id)


def as_status(probe: AgentProbe) -> AgentStatus:
    """The store's row for what the probe saw; ``ps`` extras stay on the host."""
    from fleet_queue.cards import AgentStatus

    return AgentStatus(
        tenant_id=probe.tenant_id, host=probe.host, agent=probe.agent, runtime=probe.runtime,
        agent_class=probe.agent_class, heartbeat_at=probe.heartbeat_at, health=probe.health,
        heartbeat_status=probe.heartbeat_status, pane_alive=bool(probe.pane_alive),
        pid=probe.pid, pane_command=probe.pane_command, idle_seconds=probe.idle_seconds,
        readiness=probe.readiness,  # type: ignore[arg-type]
        current_card=probe.current_card, updated_at=probe.updated_at,
    )  # fmt: skip


def collect_status(task: Task) -> dict[str, Any]:
    """Probe this host's agents into the store, keep the leases of the working ones alive
    (``CardStore.renew_working``), and nudge a tick when one becomes available."""
    from workers.probe import probe_agents

    ctx = _ctx(task)
    tenant = ctx.settings.tenant
    probes = probe_agents(ctx.settings, ctx.roster)
    # this worker speaks for its own tenant: another tenant's worker reports the rest
    rows = [as_status(probe) for probe in probes if probe.tenant_id == tenant]
    actions = supervise_host(ctx, probes)  # restarts the dead, briefs the new (next round's rows)
    # waiting (a permission prompt) is still the agent's card: a person will answer it
    working = [row.agent for row in rows if row.readiness in ("working", "waiting")]
    renewed = ctx.store.renew_working(working, ctx.settings.lease_ttl, ctx.settings.card_timeout)
    # A paused host or agent is said in the store, so the tick stops sending it cards it
    # would only release.
    paused_host, held = host_paused(ctx.settings), ctx.store.paused_agents()
    rows = [
        replace(row, readiness="paused") if paused_host or row.agent in held else row
        for row in rows
    ]
    ctx.store.upsert_agent_statuses(rows)
    previous: dict[str, str] = ctx.extras.setdefault("readiness", {})
    became_available = [
        row.agent
        for row in rows
        if row.readiness == "available" and previous.get(row.agent) != "available"
    ]
    previous.update({row.agent: row.readiness for row in rows})
    if became_available:
        nudge_tick(ctx.settings, task.app, reason="available")
    return {
        "agents": len(rows),
        "available": became_available,
        "renewed": renewed,
        "supervision": [f"{a.agent}: {a.action}" for a in actions],
        "spend": scan_spend(ctx),
    }


def scan_spend(ctx: FleetContext) -> dict[str, object] | str:
    """The agents' new transcript and rollout lines into the ledger, budgets enforced
    (``workers.spend_scan``); its failure never fails the status collection."""
    from workers.spend_scan import scan_host

    try:
        return scan_host(ctx.settings, ctx.roster, ctx.store).as_dict()
    except FleetError as exc:
        log.warning("spend scan: %s", exc)
        return str(exc)


def supervise_host(ctx: FleetContext, probes: list[AgentProbe]) -> list[Action]:
    """``workers.supervision`` with this worker's store (events) and deliverer (briefs)."""
    from fleet_queue.cards import CardStatus
    from workers.supervision import supervise

    def record(agent: str, kind: EventKind, detail: str) -> None:
        try:
            ctx.store.record_event(None, kind, agent=agent, detail=detail)
        except FleetError:
            log.warning("could not record %s of %s: %s", kind, agent, detail)

    def type_text(agent: str, text: str) -> None:
        deliverer_for(ctx).deliver(agent, text, source=f"{ctx.settings.host}:brief", verify=True)

    def release(agent: str, reason: str) -> list[str]:
        """The dead pane's cards back to ready now (fenced by their token)."""
        released = []
        try:
            for card in ctx.store.list(status=CardStatus.CLAIMED):
                if card.lease_owner == agent and card.host == ctx.settings.host:
                    released.append(ctx.store.release(card.id, card.token, reason).id)
        except FleetError as exc:  # taken back meanwhile, or no store: its lease still ends
            log.warning("could not release the cards of %s: %s", agent, exc)
        return released

    return supervise(ctx.settings, ctx.roster, probes, record, type_text, release)


# Registered the Celery way: the fleet's app names this module in ``include``
# (``fleet_queue.celery_config.HOST_TASK_MODULES``) and the worker imports it on start;
# a shared task joins every app, each bound to its own (``self.app.fleet``).


@shared_task(name=DELIVER_TASK, bind=True, max_retries=None)
def deliver_card(self: Task, card_id: str, token: int, agent: str) -> dict[str, Any]:
    return deliver(self, card_id, token, agent)


@shared_task(name=HOST_STATUS_TASK, bind=True)
def collect_host_status(self: Task) -> dict[str, Any]:
    return collect_status(self)


@worker_ready.connect
def _first_status(sender: Any = None, **_: Any) -> None:
    """Report this host's agents as soon as the worker listens, not one interval later,
    keep reporting them if beat stops asking (``workers.status_watchdog``), and serve
    the agents' closes (``workers.agent_socket``)."""
    app = getattr(sender, "app", None)
    ctx: FleetContext | None = getattr(app, "fleet", None)
    if app is None or ctx is None:
        return  # not a fleet worker
    queue = host_queue(ctx.settings.tenant, ctx.settings.host)
    app.send_task(HOST_STATUS_TASK, queue=queue)
    start_status_watchdog(app)
    start_agent_socket(ctx)  # agents close their cards here (workers.agent_socket)
    start_local_delivery(ctx, sender, queue, type_card)  # the tick types this host's claims
