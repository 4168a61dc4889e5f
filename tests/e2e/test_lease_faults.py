"""The fence includes time, under faults: a delivery held up past its lease is never typed.

A real fleet (stub agents in real tmux, Celery worker and beat, real Redis) on SQLite and
on PostgreSQL. The host worker is stopped (SIGSTOP) at the worst moments:

- while it waits for the owner's pane to read again, after the fence let it through; it
  wakes after the lease expired and must not type (the time to type is checked again
  just before the keys go);
- with the delivery message waiting in its queue; it wakes with less than the delivery
  margin of the lease left and ``begin_delivery`` must refuse.

In both the card goes to another agent under a new token, which gets its text once; the
old owner's stub, which logs every text it reads, never sees it.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fleet_queue.cards import Card, NewCard
from fleet_queue.celery_app import make_celery
from fleet_queue.settings import Settings
from fleet_queue.supervisor import run_tick
from fleet_queue.tasks import send_delivery
from tests.support.fleet import Fleet, running_fleet, stub_roster
from tests.support.poll import wait_until
from tests.support.timing import scaled
from workers.heartbeat import utcnow
from workers.tasks import DELIVERY_MARGIN

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

LEASE = 12.0
"""Seconds on a quiet machine (scaled): long enough for a claim and a few delivery retries
before the stop, short enough to keep each test well under a minute."""
ROSTER = [
    ("lead", "orchestrator"),
    ("enh", "enhancer"),
    ("c0", "implementer"),
    ("c1", "implementer"),
]
BY = "lease-fault test"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, e2e_settings: Settings) -> Settings:
    update: dict[str, object] = {"lease_ttl": scaled(LEASE)}
    if request.param == "postgresql":
        update["database_url"] = request.getfixturevalue("pg_url")
    return e2e_settings.model_copy(update=update)


@pytest.fixture
def fleet(backend: Settings) -> Iterator[Fleet]:
    roster = stub_roster(ROSTER, env={"FLEET_STUB_WORK": "0.1"})
    # c0's stub runs under a shell: tmux wakes a pane's own process when it is stopped
    # (SIGCONT at once), not a child of it, so the test can stop c0's reader
    stub = f"{shlex.quote(sys.executable)} -m workers.stub_agent --agent c0"
    roster["agents"][2]["command"] = f"sh -c {shlex.quote(stub + '; :')}"
    with running_fleet(backend, roster) as running:
        running.store.pause_agent("c1", "the first claim is c0's", BY)
        yield running


def margin(settings: Settings) -> float:
    """The host worker's delivery margin for this lease (``workers.tasks.lease_margin``)."""
    return min(DELIVERY_MARGIN, settings.lease_ttl / 4)


def stop_worker(fleet: Fleet, sig: signal.Signals) -> None:
    proc = fleet.processes.child("worker").process
    assert proc is not None and proc.poll() is None
    os.killpg(proc.pid, sig)


def pane_pid(fleet: Fleet, agent: str) -> int:
    row = next(s for s in fleet.store.agent_statuses() if s.agent == agent)
    assert row.pid is not None, row
    return row.pid


def stub_pid(fleet: Fleet, agent: str) -> int:
    """The stub under the pane's shell."""
    shell = pane_pid(fleet, agent)
    children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def texts_of(fleet: Fleet, agent: str, card_id: str, token: int | None = None) -> list[str]:
    """The card's texts the agent's stub read (under ``token``, if given)."""
    mark = f"fleet card done {card_id} --token {'' if token is None else token}"
    return [m for m in fleet.messages(agent) if mark in m]


def wait_claimed(fleet: Fleet, card_id: str, agent: str) -> Card:
    def claimed() -> bool:
        card = fleet.store.get(card_id)
        return card.status == "claimed" and card.lease_owner == agent

    wait_until(claimed, timeout=scaled(20), interval=0.01, what=f"{card_id} claimed by {agent}")
    return fleet.store.get(card_id)


def sleep_until(when: datetime) -> None:
    time.sleep(max((when - utcnow()).total_seconds(), 0.0))


def hand_over(fleet: Fleet) -> None:
    """c0 may not be given the card again: the next claim is c1's."""
    fleet.store.pause_agent("c0", "the old owner", BY)
    fleet.store.resume_agent("c1", BY)


def assert_only_new_owner(fleet: Fleet, card_id: str, old: Card) -> None:
    """Done by c1 under a later token, its text read once, by c1; nothing under the old token."""
    fleet.wait_status(card_id, "done", timeout=scaled(40))
    final = fleet.store.get(card_id)
    assert final.token > old.token
    assert texts_of(fleet, "c0", card_id) == [], "the old owner read the card"
    assert len(texts_of(fleet, "c1", card_id, final.token)) == 1
    assert texts_of(fleet, "c1", card_id, old.token) == []
    events = fleet.store.events(card_id=card_id)
    delivered = [(e.agent, e.token) for e in events if e.kind == "delivered"]
    assert delivered == [("c1", final.token)], delivered


def test_worker_stopped_while_waiting_for_the_pane_never_types_late(fleet: Fleet) -> None:
    # c0 stops reading (stopped): the fence lets the delivery through, then the pane refuses
    # it as not reading, and the worker retries within the lease
    c0 = stub_pid(fleet, "c0")
    os.kill(c0, signal.SIGSTOP)
    try:
        fleet.store.create(NewCard(id="late1", title="held up", target_class="implementer"))
        old = wait_claimed(fleet, "late1", "c0")
        assert old.lease_expires_at is not None
        time.sleep(scaled(1.5))  # the worker is in its wait for the pane
        stop_worker(fleet, signal.SIGSTOP)
    finally:
        os.kill(c0, signal.SIGCONT)  # c0 reads again: any late typing would land
    try:
        hand_over(fleet)
        assert fleet.status("late1") == "claimed"
        sleep_until(old.lease_expires_at)
        time.sleep(scaled(0.5))
    finally:
        stop_worker(fleet, signal.SIGCONT)
    assert_only_new_owner(fleet, "late1", old)
    assert not texts_of(fleet, "c0", "late1")


def test_delivery_with_less_than_the_margin_left_is_refused(fleet: Fleet) -> None:
    app = make_celery(fleet.settings)
    stop_worker(fleet, signal.SIGSTOP)
    try:
        fleet.store.create(NewCard(id="late2", title="queued too long", target_class="implementer"))
        # the tick, as any host worker of the tenant runs it: c0 claims, deliver_card is queued
        result = run_tick(
            fleet.store, fleet.roster, fleet.settings, lambda c: send_delivery(app.fleet, c)
        )
        assert result.claims == ["late2"], result
        old = fleet.store.get("late2")
        assert old.lease_owner == "c0" and old.lease_expires_at is not None
        hand_over(fleet)
        # wake the worker with half the margin of the lease left: the message is there,
        # unexpired, and the fence must say no
        sleep_until(old.lease_expires_at - timedelta(seconds=margin(fleet.settings) / 2))
    finally:
        stop_worker(fleet, signal.SIGCONT)
    dropped = wait_until(
        lambda: [e for e in fleet.store.events(card_id="late2") if e.kind == "dropped"],
        timeout=scaled(20),
        what="the late delivery dropped",
    )
    assert dropped[0].token == old.token and dropped[0].agent == "c0"
    assert dropped[0].detail is not None and "margin" in dropped[0].detail, dropped[0].detail
    assert_only_new_owner(fleet, "late2", old)
