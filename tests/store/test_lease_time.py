"""The fence includes time: nothing is typed, marked delivered or renewed under a lease that
has expired (or has less than the typing's margin left), by the database's clock, on both
backends; and the store's boundary raises our errors, not the driver's.

Expiry is set through the database's own clock (``db_now``) or waited for on it, never by
sleeping a fixed time, so the tests hold on a loaded machine.
"""

from __future__ import annotations

import socket

import pytest
import sqlalchemy as sa

from fleet_queue.cards import CardStatus, EventKind, NewCard
from fleet_queue.errors import LeaseExpiredError, StaleTokenError, StoreUnavailableError
from fleet_queue.store import CardStore
from fleet_queue.store.engine import db_now
from fleet_queue.store.tables import cards
from tests.support.poll import wait_until

TTL = 600.0


def claimed(store: CardStore, card_id: str = "a", agent: str = "w1") -> int:
    if card_id not in {c.id for c in store.list()}:
        store.create(NewCard(id=card_id, title=f"card {card_id}"))
    claim = store.claim(agent, None, "h1", TTL, card_id=card_id)
    assert claim is not None
    return claim.token


def lease_left(store: CardStore, card_id: str, seconds: float) -> None:
    """Set the card's lease to end ``seconds`` from now by the database clock (< 0: ended)."""
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(cards)
            .where(cards.c.tenant_id == store.tenant, cards.c.id == card_id)
            .values(lease_expires_at=db_now() + seconds)
        )


def state(store: CardStore) -> tuple[list[dict[str, object]], int]:
    """Every card and the number of events: what a refusal must leave as it was."""
    return [c.to_dict() for c in store.list()], len(store.events(limit=None))


def test_an_expired_lease_refuses_delivery_and_renewal_and_changes_nothing(
    store: CardStore,
) -> None:
    token = claimed(store)
    lease_left(store, "a", -1.0)
    before = state(store)
    gate = store.begin_delivery("a", token, "w1", margin=0.0)
    assert gate.card is None and "expired" in gate.refusal
    with pytest.raises(LeaseExpiredError, match="expired"):
        store.mark_delivered("a", token, "w1")
    with pytest.raises(LeaseExpiredError, match="cannot renew"):
        store.renew("a", token, TTL)
    assert state(store) == before
    assert isinstance(LeaseExpiredError("x"), StaleTokenError)  # callers that fence keep working
    # the reclaim takes it, as it would have had nobody touched it
    assert [r.card_id for r in store.reclaim_expired()] == ["a"]


def test_renew_working_never_extends_an_expired_lease(store: CardStore) -> None:
    token = claimed(store)
    store.mark_delivered("a", token, "w1")
    token_b = claimed(store, "b", agent="w2")
    store.mark_delivered("b", token_b, "w2")
    lease_left(store, "a", -0.5)  # expired, not yet reclaimed
    lease_left(store, "b", 5.0)  # live, under half the ttl: due for renewal
    expired_before = store.get("a")
    assert store.renew_working(["w1", "w2"], TTL, card_timeout=3600) == ["b"]
    assert store.get("a") == expired_before
    renewed = [e.card_id for e in store.events(kind=EventKind.RENEWED)]
    assert renewed == ["b"]


def test_a_lease_with_less_than_the_margin_left_is_not_typed(store: CardStore) -> None:
    token = claimed(store)
    lease_left(store, "a", 20.0)
    before = state(store)
    gate = store.begin_delivery("a", token, "w1", margin=60.0)
    assert gate.card is None and "60s margin" in gate.refusal
    with pytest.raises(LeaseExpiredError, match="margin"):
        store.mark_delivered("a", token, "w1", margin=60.0)
    assert state(store) == before
    gate = store.begin_delivery("a", token, "w1", margin=5.0)
    assert gate.card is not None and gate.card.token == token and gate.refusal == ""
    assert gate.pause.paused is False
    card = store.mark_delivered("a", token, "w1", margin=5.0)
    assert card.delivered_at is not None


def test_begin_delivery_refuses_what_the_old_fence_refused(store: CardStore) -> None:
    token = claimed(store)
    assert store.begin_delivery("ghost", 1, "w1", 0).refusal == "no such card"
    assert "stale delivery" in store.begin_delivery("a", token + 1, "w1", 0).refusal
    assert "owner w1" in store.begin_delivery("a", token, "w2", 0).refusal
    with pytest.raises(StaleTokenError, match="leased to w1, not w2"):
        store.mark_delivered("a", token, "w2")
    store.pause("maintenance", "op")
    gate = store.begin_delivery("a", token, "w1", 0)  # paused: the caller gives it back
    assert gate.card is not None and gate.pause.paused and gate.pause.reason == "maintenance"
    store.mark_delivered("a", token, "w1")
    gate = store.begin_delivery("a", token, "w1", 0)
    assert gate.card is None and gate.refusal == "already delivered under this token"


def test_after_the_reclaim_a_late_old_owner_is_refused_and_the_new_owner_types(
    store: CardStore,
) -> None:
    old = claimed(store, agent="w1")
    lease_left(store, "a", -1.0)
    assert [r.outcome for r in store.reclaim_expired()] == [CardStatus.READY]
    new = claimed(store, agent="w2")
    assert new == old + 1
    # the old owner's delivery comes late (a broker outage): refused before and after typing
    assert store.begin_delivery("a", old, "w1", margin=1.0).card is None
    with pytest.raises(StaleTokenError, match="claimed under token"):
        store.mark_delivered("a", old, "w1")
    with pytest.raises(StaleTokenError):
        store.renew("a", old, TTL)
    gate = store.begin_delivery("a", new, "w2", margin=1.0)
    assert gate.card is not None and gate.card.lease_owner == "w2"
    card = store.mark_delivered("a", new, "w2", margin=1.0)
    assert card.delivered_at is not None and card.lease_owner == "w2" and card.token == new
    delivered = store.events(card_id="a", kind="delivered")
    assert [(e.agent, e.token) for e in delivered] == [("w2", new)]


def test_a_short_lease_expires_by_the_database_clock(store: CardStore) -> None:
    """A real lease of a small measured ttl, waited out on the database's clock."""
    store.create(NewCard(id="a", title="a"))
    claim = store.claim("w1", None, "h1", 0.05, card_id="a")
    assert claim is not None
    ends = claim.expires_at
    assert wait_until(lambda: store.now() > ends, timeout=30)
    assert store.begin_delivery("a", claim.token, "w1", margin=0.0).card is None
    with pytest.raises(LeaseExpiredError):
        store.mark_delivered("a", claim.token, "w1")
    with pytest.raises(LeaseExpiredError):
        store.renew("a", claim.token, TTL)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_database_that_is_not_there_raises_store_unavailable() -> None:
    url = f"postgresql://fleet@127.0.0.1:{_closed_port()}/fleet?connect_timeout=5"
    with pytest.raises(StoreUnavailableError, match="the card store is not reachable"):
        CardStore(url)
    store = CardStore(url, migrate_schema=False)
    try:
        with pytest.raises(StoreUnavailableError, match="not reachable"):
            store.get("a")
        with pytest.raises(StoreUnavailableError):
            store.create(NewCard(id="a", title="a"))
    finally:
        store.close()


@pytest.mark.postgres
def test_a_connection_lost_mid_transaction_raises_store_unavailable(pg_url: str) -> None:
    with CardStore(pg_url, tenant="t1", host="h1") as store:
        store.create(NewCard(id="a", title="a"))
        with pytest.raises(StoreUnavailableError), store._read() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        assert store.get("a").id == "a"  # the pool recovers once the database is back


def delivered_events(store: CardStore, card_id: str) -> list[tuple[int | None, str | None]]:
    return [
        (e.token, e.detail)
        for e in store.events(card_id=card_id, limit=None)
        if e.kind == EventKind.DELIVERED
    ]


def test_record_delivery_marks_a_live_lease_and_only_logs_one_that_moved_on(
    store: CardStore,
) -> None:
    """The host worker's mark after a verified typing: under the live lease it is the card's
    ``delivered_at``; once the agent closed the card (or the lease ran out) the text still
    reached the pane, so the event is written, with why, and the card is left as it is."""
    token = claimed(store)
    assert store.record_delivery("a", token, "w1") is True
    assert store.get("a").delivered_at is not None
    assert delivered_events(store, "a") == [(token, None)]

    token_b = claimed(store, "b")
    store.complete("b", token_b)  # a quick agent closed it between verify and the mark
    done = store.get("b").to_dict()
    assert store.record_delivery("b", token_b, "w1") is False
    assert store.get("b").to_dict() == done
    [(logged, detail)] = delivered_events(store, "b")
    assert logged == token_b and detail is not None
    assert detail.startswith("recorded after the lease moved on") and "done" in detail

    token_c = claimed(store, "c")
    lease_left(store, "c", -1.0)
    before = store.get("c").to_dict()
    assert store.record_delivery("c", token_c, "w1") is False
    assert store.get("c").to_dict() == before and before["delivered_at"] is None
    [(_, detail)] = delivered_events(store, "c")
    assert detail is not None and "expired" in detail
