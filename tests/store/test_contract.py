"""The card store's contract: every operation and every refusal, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fleet_queue.cards import AgentStatus, CardStatus, ClaimRequest, EventKind, NewCard
from fleet_queue.errors import (
    ConflictError,
    CycleError,
    NotFoundError,
    StaleTokenError,
    UsageError,
)
from fleet_queue.store import CardStore
from tests.support.poll import wait_until


def new(card_id: str, **kw: object) -> NewCard:
    return NewCard(id=card_id, title=kw.pop("title", f"card {card_id}"), **kw)  # type: ignore[arg-type]


def snapshot(store: CardStore) -> list[dict[str, object]]:
    return [c.to_dict() for c in store.list()]


# --- create -----------------------------------------------------------------------------


def test_create_and_get(store: CardStore) -> None:
    card = store.create(
        new("a", body="do it", phase="M1", priority=3, acceptance=["tests pass"], max_attempts=5)
    )
    assert card.status is CardStatus.READY and card.ready_to_claim
    assert (card.tenant_id, card.created_host, card.token, card.attempts) == ("t1", "h1", 0, 0)
    assert card.acceptance == ["tests pass"] and card.max_attempts == 5
    assert store.get("a") == card
    assert [e.kind for e in store.events(card_id="a")] == ["created"]


def test_create_strips_control_characters(store: CardStore) -> None:
    card = store.create(new("a", title="hi\x1b[31m there\x07", body="line1\r\nline2\x00"))
    assert card.title == "hi[31m there" and card.body == "line1\nline2"


def test_idempotency_key_returns_existing(store: CardStore) -> None:
    first = store.create(new("a", idempotency_key="k1"))
    again = store.create(new("b", idempotency_key="k1"))
    assert again == first
    assert [c.id for c in store.list()] == ["a"]


def test_duplicate_id_refused(store: CardStore) -> None:
    store.create(new("a"))
    before = snapshot(store)
    with pytest.raises(ConflictError, match="'a' already exists"):
        store.create(new("a", title="other"))
    assert snapshot(store) == before


def test_unknown_dependency_refused(store: CardStore) -> None:
    with pytest.raises(NotFoundError, match=r"unknown card.*nope"):
        store.create(new("a", depends_on=("nope",)))
    assert store.list() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "has space"},
        {"id": "tab\there"},
        {"id": ""},
        {"title": "  "},
        {"title": "\x1b\x07"},
        {"depends_on": ("self",), "id": "self"},
        {"target_agent": "two words"},
    ],
)
def test_bad_new_card_refused(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"id": "ok", "title": "t", **bad}
    with pytest.raises(UsageError):
        NewCard(**fields)  # type: ignore[arg-type]


def test_dependencies_count_unmet(store: CardStore) -> None:
    store.create(new("a"))
    b = store.create(new("b", depends_on=("a",)))
    assert b.unmet_deps == 1 and not b.ready_to_claim
    assert [c.id for c in store.list(ready_only=True)] == ["a"]


def test_bulk_create(store: CardStore) -> None:
    store.create(new("old"))
    progress: list[int] = []
    cards = [new(f"c{i}", priority=i % 3, depends_on=("old",) if i == 0 else ()) for i in range(50)]
    cards.append(new("child", depends_on=("c1", "c2")))
    result = store.create_many(cards, progress=progress.append)
    assert result.created == 51 and sum(progress) == 51
    assert store.get("child").unmet_deps == 2
    assert store.get("c0").unmet_deps == 1
    assert store.dependents("c1") == ["child"]


def test_bulk_created_cards_read_back_like_single_ones(store: CardStore) -> None:
    """Bulk rows go to the driver without SQLAlchemy's type processing: same cards back."""
    shapes = [
        {"depends_on": ("c1",), "acceptance": ["tests pass", {"coverage": 0.9}]},
        {"acceptance": {"review": "two approvals", "unicode": "ünï ✓"}},
        {"body": "line\nbreaks and 'quotes'", "phase": "p1", "target_class": "coder"},
        {"idempotency_key": "k-1", "max_attempts": 5, "target_agent": "a1"},
    ]
    store.create(new("c1"))
    store.create_many([new(f"b{i}", **kw) for i, kw in enumerate(shapes)])
    for i, kw in enumerate(shapes):
        store.create(new(f"s{i}", **kw) if "idempotency_key" not in kw else new(f"s{i}"))
    for i, kw in enumerate(shapes):
        bulk, single = store.get(f"b{i}").to_dict(), store.get(f"s{i}").to_dict()
        for key in ("id", "title", "created_at", "updated_at"):
            bulk.pop(key), single.pop(key)
        if "idempotency_key" in kw:
            assert bulk.pop("idempotency_key") == "k-1" and single.pop("idempotency_key") is None
            assert bulk.pop("max_attempts") == 5 and bulk.pop("target_agent") == "a1"
            single.pop("max_attempts"), single.pop("target_agent")
        assert bulk == single


def test_bulk_create_idempotent_by_key(store: CardStore) -> None:
    store.create_many([new("a", idempotency_key="ka")])
    result = store.create_many([new("a", idempotency_key="ka"), new("b", depends_on=("a",))])
    assert result.created == 1 and result.existing == ("a",)


@pytest.mark.parametrize(
    ("batch", "error", "match"),
    [
        ([new("x"), new("x")], ConflictError, "duplicate card id"),
        ([new("y", idempotency_key="k"), new("z", idempotency_key="k")], ConflictError, "key"),
        ([new("existing")], ConflictError, "already exist: existing"),
        ([new("p", depends_on=("ghost",))], NotFoundError, "ghost"),
        (
            [new("p", depends_on=("q",)), new("q", depends_on=("r",)), new("r", depends_on=("p",))],
            CycleError,
            "p -> q -> r -> p",
        ),
    ],
)
def test_bulk_create_refusals_change_nothing(
    store: CardStore, batch: list[NewCard], error: type[Exception], match: str
) -> None:
    store.create(new("existing"))
    before = snapshot(store)
    events_before = len(store.events())
    with pytest.raises(error, match=match):
        store.create_many([new("fine"), *batch])
    assert snapshot(store) == before
    assert len(store.events()) == events_before


# --- list / filters ----------------------------------------------------------------------


def test_list_filters_and_order(store: CardStore) -> None:
    store.create(new("low", priority=1, phase="M1"))
    store.create(new("high", priority=9, phase="M2", target_class="coder"))
    store.create(new("mid", priority=5, phase="M1", target_agent="w1"))
    store.create(new("later", priority=9))
    assert [c.id for c in store.list()] == ["high", "later", "mid", "low"]
    assert [c.id for c in store.list(phase="M1")] == ["mid", "low"]
    assert [c.id for c in store.list(target_class="coder")] == ["high"]
    assert [c.id for c in store.list(target_agent="w1")] == ["mid"]
    assert [c.id for c in store.list(limit=2)] == ["high", "later"]
    store.block("low")
    assert [c.id for c in store.list(status="blocked")] == ["low"]
    assert [c.id for c in store.list(status=["blocked", CardStatus.READY], limit=1)] == ["high"]


def test_get_unknown(store: CardStore) -> None:
    with pytest.raises(NotFoundError, match="no card 'nope'"):
        store.get("nope")


def test_tenants_are_separate(store: CardStore, store_url: str) -> None:
    store.create(new("a"))
    with CardStore(store_url, tenant="t2", host="h2") as other:
        assert other.list() == []
        other.create(new("a"))  # same id, other tenant
        assert other.claim("w", None, "h2", 60) is not None
    assert store.get("a").status is CardStatus.READY


# --- claim -----------------------------------------------------------------------------


def test_claim_sets_lease(store: CardStore) -> None:
    store.create(new("a"))
    claim = store.claim("w1", "coder", "hostA", 300)
    assert claim is not None
    card = claim.card
    assert (claim.token, claim.agent, claim.host) == (1, "w1", "hostA")
    assert (card.status, card.lease_owner, card.host, card.attempts) == (
        CardStatus.CLAIMED,
        "w1",
        "hostA",
        1,
    )
    assert card.lease_expires_at == claim.expires_at
    assert card.claimed_at is not None
    assert timedelta(seconds=299) < claim.expires_at - card.claimed_at < timedelta(seconds=301)
    assert store.claim("w2", None, "hostA", 300) is None
    assert store.lease_owners() == {"w1"}
    kinds = [(e.kind, e.agent, e.token, e.host) for e in store.events(card_id="a")]
    assert kinds[-1] == ("claimed", "w1", 1, "hostA")


def test_claim_order_target_then_class_then_priority_then_age(store: CardStore) -> None:
    store.create(new("general-hi", priority=9))
    store.create(new("class-lo", priority=1, target_class="coder"))
    store.create(new("mine-lo", priority=0, target_agent="w1"))
    store.create(new("other-agent", priority=99, target_agent="w9"))
    store.create(new("general-hi-2", priority=9))

    def next_for(agent: str, agent_class: str | None) -> str | None:
        claim = store.claim(agent, agent_class, "h1", 60)
        return claim.card.id if claim else None

    assert next_for("w1", "coder") == "mine-lo"
    assert next_for("w1", "coder") == "class-lo"
    assert next_for("w1", "coder") == "general-hi"
    assert next_for("w2", "writer") == "general-hi-2"
    assert next_for("w2", "writer") is None  # other-agent is only for w9
    assert next_for("w9", None) == "other-agent"


def test_claim_skips_unmet_dependencies(store: CardStore) -> None:
    store.create(new("a", priority=1))
    store.create(new("b", priority=9, depends_on=("a",)))
    first = store.claim("w1", None, "h1", 60)
    assert first is not None and first.card.id == "a"
    assert store.claim("w2", None, "h1", 60) is None
    store.complete("a", first.token)
    assert store.get("b").unmet_deps == 0
    second = store.claim("w2", None, "h1", 60)
    assert second is not None and second.card.id == "b"


def test_claim_by_id_and_refusals(store: CardStore) -> None:
    store.create(new("a"))
    store.create(new("b", depends_on=("a",)))
    store.create(new("mine", target_agent="w9"))
    claim = store.claim("w1", None, "h1", 60, card_id="a")
    assert claim is not None and claim.card.id == "a"
    before = snapshot(store)
    with pytest.raises(ConflictError, match="is claimed, not ready"):
        store.claim("w2", None, "h1", 60, card_id="a")
    with pytest.raises(ConflictError, match="waits for 1 unfinished"):
        store.claim("w2", None, "h1", 60, card_id="b")
    with pytest.raises(ConflictError, match="is for agent w9"):
        store.claim("w2", None, "h1", 60, card_id="mine")
    with pytest.raises(NotFoundError):
        store.claim("w2", None, "h1", 60, card_id="ghost")
    with pytest.raises(UsageError, match="ttl"):
        store.claim("w2", None, "h1", -1)
    assert snapshot(store) == before


def test_claim_batch_one_card_per_agent(store: CardStore) -> None:
    store.create_many(
        [new(f"g{i}", priority=i) for i in range(5)]
        + [new("c1", target_class="coder"), new("t1", target_agent="a3")]
    )
    requests = [
        ClaimRequest("a1", "coder", "h1", 60),
        ClaimRequest("a2", "coder", "h1", 60),
        ClaimRequest("a3", None, "h2", 60),
        ClaimRequest("a1", "coder", "h1", 60),  # a repeat gets nothing extra
        ClaimRequest("a4", None, "h2", 60),
    ]
    claims = store.claim_batch(requests)
    got = {c.agent: c.card.id for c in claims}
    assert got == {"a1": "c1", "a2": "g4", "a3": "t1", "a4": "g3"}
    assert len({c.card.id for c in claims}) == len(claims)
    assert store.claim_batch([]) == []


def test_dispatch_claims_nothing_once_paused_but_an_operator_still_can(store: CardStore) -> None:
    store.create(new("p1"))
    request = [ClaimRequest("a1", None, "h1", 60)]
    store.pause(reason="maintenance", by="op")
    assert store.claim_batch(request, unless_paused=True) == []
    assert store.get("p1").status is CardStatus.READY
    assert [c.card.id for c in store.claim_batch(request)] == ["p1"]  # by hand: allowed
    store.resume(by="op")
    store.create(new("p2"))
    assert [c.card.id for c in store.claim_batch(request, unless_paused=True)] == ["p2"]


def test_tokens_grow_and_are_never_reused(store: CardStore) -> None:
    store.create(new("a"))
    seen = []
    for _ in range(3):
        claim = store.claim("w1", None, "h1", 0)
        assert claim is not None
        seen.append(claim.token)
        wait_until(lambda: store.reclaim_expired(), what="expired lease")
        store.unblock("a") if store.get("a").status is CardStatus.FAILED else None
    claim = store.claim("w1", None, "h1", 60)
    assert claim is not None
    seen.append(claim.token)
    store.release("a", claim.token, "give back")
    again = store.claim("w2", None, "h1", 60)
    assert again is not None
    seen.append(again.token)
    assert seen == sorted(set(seen)) and seen == list(range(1, 6))


# --- lease holder operations -----------------------------------------------------------------


def claimed(store: CardStore, card_id: str = "a", ttl: float = 60) -> int:
    store.create(new(card_id))
    claim = store.claim("w1", None, "h1", ttl, card_id=card_id)
    assert claim is not None
    return claim.token


def test_mark_delivered(store: CardStore) -> None:
    token = claimed(store)
    card = store.mark_delivered("a", token)
    assert card.delivered_at is not None
    with pytest.raises(StaleTokenError):
        store.mark_delivered("a", token + 1)
    assert [e.kind for e in store.events(card_id="a")][-1] == "delivered"


def test_renew(store: CardStore) -> None:
    token = claimed(store, ttl=5)
    before = store.get("a").lease_expires_at
    card = store.renew("a", token, 3600)
    assert before is not None and card.lease_expires_at is not None
    assert card.lease_expires_at - before > timedelta(seconds=3000)
    with pytest.raises(StaleTokenError):
        store.renew("a", token - 1, 60)
    with pytest.raises(UsageError):
        store.renew("a", token, -5)


def test_renew_working_keeps_delivered_leases_of_working_agents_alive(
    store: CardStore, store_url: str
) -> None:
    token = claimed(store, "a", ttl=5)
    store.mark_delivered("a", token)
    store.create(new("b"))
    assert store.claim("w2", None, "h1", 5, card_id="b") is not None  # claimed, not typed yet
    before = store.get("a").lease_expires_at
    assert store.renew_working(["w1", "w2"], ttl=3600, card_timeout=600) == ["a"]
    after = store.get("a").lease_expires_at
    assert before is not None and after is not None
    assert after - before > timedelta(seconds=3000)
    assert store.get("b").lease_expires_at < after  # type: ignore[operator]
    renewed = [e for e in store.events(card_id="a") if e.kind == "renewed"]
    assert [(e.agent, e.token) for e in renewed] == [("w1", token)]
    # more than half the lease left: nothing to write
    assert store.renew_working(["w1"], ttl=3600, card_timeout=600) == []
    # another host's worker never renews this host's leases; an agent not working neither
    with CardStore(store_url, tenant="t1", host="h2") as elsewhere:
        assert elsewhere.renew_working(["w1"], ttl=7200, card_timeout=600) == []
    assert store.renew_working(["w9"], ttl=7200, card_timeout=600) == []
    # past card_timeout after its delivery, a lease is not renewed any more
    token_c = claimed(store, "c", ttl=5)
    store.mark_delivered("c", token_c)
    assert store.renew_working(["w1"], ttl=3600, card_timeout=0) == []
    assert store.get("c").status is CardStatus.CLAIMED


def test_complete(store: CardStore) -> None:
    token = claimed(store)
    card = store.complete("a", token, result="merged")
    assert card.status is CardStatus.DONE and card.result == "merged"
    assert card.completed_at is not None and card.lease_expires_at is None
    assert card.lease_owner == "w1"  # who did it stays on record
    assert store.complete("a", token) == card  # a repeat is a no-op
    assert [e.kind for e in store.events(card_id="a")] == ["created", "claimed", "done"]


def test_stale_token_complete_refused_and_changes_nothing(store: CardStore) -> None:
    token = claimed(store)
    before = snapshot(store)
    with pytest.raises(StaleTokenError, match="stale token 7"):
        store.complete("a", 7)
    with pytest.raises(StaleTokenError):
        store.fail("a", token + 1, "nope")
    with pytest.raises(NotFoundError):
        store.complete("ghost", 1)
    assert snapshot(store) == before


def test_old_lease_cannot_complete_after_reclaim(store: CardStore) -> None:
    token = claimed(store, ttl=0)
    wait_until(lambda: store.reclaim_expired(), what="reclaim")
    with pytest.raises(StaleTokenError, match="is ready"):
        store.complete("a", token)
    new_claim = store.claim("w2", None, "h1", 60)
    assert new_claim is not None and new_claim.token == token + 1
    with pytest.raises(StaleTokenError):
        store.complete("a", token)
    assert store.complete("a", new_claim.token).status is CardStatus.DONE


def test_fail(store: CardStore) -> None:
    token = claimed(store)
    card = store.fail("a", token, "cannot\x1b reproduce")
    assert card.status is CardStatus.FAILED and card.reason == "cannot reproduce"
    with pytest.raises(StaleTokenError, match="is failed"):
        store.complete("a", token)
    with pytest.raises(UsageError, match="reason"):
        store.fail("a", token, "  ")


def test_release(store: CardStore) -> None:
    token = claimed(store)
    card = store.release("a", token, "pane busy")
    assert card.status is CardStatus.READY and card.lease_owner is None
    assert card.attempts == 0 and card.token == token
    with pytest.raises(StaleTokenError):
        store.release("a", token, "again")
    assert store.events(card_id="a")[-1].detail == "pane busy"


def _delivery_fails(store: CardStore, card_id: str, error: str) -> CardStatus:
    claim = store.claim("w1", None, "h1", 60, card_id=card_id)
    assert claim is not None
    return store.release_undelivered(card_id, claim.token, error).status


def test_delivery_failures_block_the_card_at_max_attempts(store: CardStore) -> None:
    store.create(new("a", max_attempts=3))
    for why in ("fleet paused by op: maintenance", "host h1 is paused", "pane busy"):
        claim = store.claim("w1", None, "h1", 60, card_id="a")
        assert claim is not None
        store.release("a", claim.token, why)  # releases for other reasons never count
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.READY
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.READY
    token = store.get("a").token
    assert _delivery_fails(store, "a", "not accepted: draft left") is CardStatus.BLOCKED
    card = store.get("a")
    assert card.reason is not None
    assert "3 times" in card.reason and "not accepted: draft left" in card.reason
    assert card.lease_owner is None and card.lease_expires_at is None
    assert card.attempts == 0 and card.token == token + 1
    last = store.events(card_id="a")[-1]
    assert (last.kind, last.detail, last.agent) == ("blocked", card.reason, "w1")
    assert last.token == token + 1
    assert store.claim("w2", None, "h1", 60) is None  # parked until an operator unblocks it
    assert store.stats()["counts"]["blocked"] == 1

    store.unblock("a")  # the operator fixed the pane: the count starts afresh
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.READY
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.READY
    claim = store.claim("w1", None, "h1", 60, card_id="a")
    assert claim is not None
    store.mark_delivered("a", claim.token)  # a delivery starts it afresh too
    store.reclaim_card("a")
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.READY
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.READY
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.BLOCKED


def test_one_delivery_failure_blocks_a_single_attempt_card(store: CardStore) -> None:
    store.create(new("a", max_attempts=1))
    assert _delivery_fails(store, "a", "dead pane") is CardStatus.BLOCKED
    assert "1 time" in (store.get("a").reason or "")


def test_done_card_never_changes(store: CardStore) -> None:
    store.create(new("b"))
    token = claimed(store)
    done = store.complete("a", token)
    for refused in (
        lambda: store.block("a"),
        lambda: store.unblock("a"),
        lambda: store.link("a", "b"),
        lambda: store.release("a", token, "x"),
        lambda: store.fail("a", token, "x"),
        lambda: store.claim("w", None, "h1", 60, card_id="a"),
        lambda: store.reclaim_card("a"),
    ):
        with pytest.raises(ConflictError):
            refused()
    assert store.get("a") == done


# --- reclaim -------------------------------------------------------------------------------


def test_reclaim_expired_and_live_leases(store: CardStore) -> None:
    store.create_many([new("short"), new("long"), new("last", max_attempts=1)])
    assert store.claim("w1", None, "hA", 0.2, card_id="short") is not None
    assert store.claim("w2", None, "hB", 3600, card_id="long") is not None
    assert store.claim("w3", None, "hC", 0.2, card_id="last") is not None
    assert store.stats()["expired_leases"] in (0, 1, 2)
    reclaimed = wait_until(lambda: store.reclaim_expired(), what="expired leases")
    if len(reclaimed) < 2:
        reclaimed += wait_until(lambda: store.reclaim_expired(), what="second expired lease")
    by_id = {r.card_id: r for r in reclaimed}
    assert set(by_id) == {"short", "last"}
    assert by_id["short"].outcome is CardStatus.READY and by_id["short"].agent == "w1"
    assert by_id["last"].outcome is CardStatus.FAILED and "attempt 1 of 1" in by_id["last"].reason
    assert store.get("short").status is CardStatus.READY
    assert store.get("long").status is CardStatus.CLAIMED
    assert store.get("last").status is CardStatus.FAILED
    assert store.reclaim_expired() == []
    kinds = {e.card_id: e.kind for e in store.events()}
    assert kinds["short"] == "reclaimed" and kinds["last"] == "failed"


def test_reclaim_card_forces_one(store: CardStore) -> None:
    token = claimed(store, ttl=3600)
    result = store.reclaim_card("a")
    assert result.outcome is CardStatus.READY and result.token == token
    with pytest.raises(ConflictError, match="not claimed"):
        store.reclaim_card("a")


# --- link / block ----------------------------------------------------------------------------


def test_link(store: CardStore) -> None:
    store.create_many([new("a"), new("b"), new("c")])
    card = store.link("b", "a")
    assert card.depends_on == ("a",) and card.unmet_deps == 1
    assert store.link("b", "a") == card  # twice is once
    token = store.claim("w", None, "h1", 60, card_id="a")
    assert token is not None
    store.complete("a", token.token)
    assert store.link("c", "a").unmet_deps == 0  # a done dependency is met


def test_link_refuses_cycle_naming_it(store: CardStore) -> None:
    store.create_many([new("a"), new("b", depends_on=("a",)), new("c", depends_on=("b",))])
    before = snapshot(store)
    with pytest.raises(CycleError, match="a -> c -> b -> a"):
        store.link("a", "c")
    with pytest.raises(CycleError, match="a -> a"):
        store.link("a", "a")
    with pytest.raises(NotFoundError):
        store.link("a", "ghost")
    assert snapshot(store) == before


def test_block_and_unblock(store: CardStore) -> None:
    store.create(new("b"))
    token = claimed(store)
    blocked = store.block("a", "waiting for review")
    assert blocked.status is CardStatus.BLOCKED and blocked.lease_owner is None
    assert store.claim("w", None, "h1", 60, card_id="b") is not None
    assert store.claim("w2", None, "h1", 60) is None  # blocked is never claimed
    with pytest.raises(StaleTokenError, match="blocked"):
        store.complete("a", token)
    with pytest.raises(ConflictError):
        store.unblock("b")
    card = store.unblock("a")
    assert card.status is CardStatus.READY
    again = store.claim("w3", None, "h1", 60)
    assert again is not None and again.token == token + 1


def test_unblock_requeues_failed(store: CardStore) -> None:
    token = claimed(store)
    store.fail("a", token, "flaky")
    card = store.unblock("a")
    assert card.status is CardStatus.READY and card.attempts == 0 and card.reason is None


# --- events, stats, pause, agents -----------------------------------------------------------------


def test_record_event_and_filters(store: CardStore) -> None:
    store.create(new("a"))
    store.record_event("a", "dropped", agent="w1", token=3, detail="stale delivery")
    store.record_event(None, EventKind.UNDELIVERED)
    dropped = store.events(kind="dropped")
    assert [(e.card_id, e.agent, e.token, e.detail) for e in dropped] == [
        ("a", "w1", 3, "stale delivery")
    ]
    assert [e.kind for e in store.events(card_id="a")] == ["created", "dropped"]
    assert [e.kind for e in store.events(limit=1)] == ["undelivered"]
    now = store.now()
    assert store.events(since=now + timedelta(seconds=60)) == []
    assert len(store.events(until=now + timedelta(seconds=60))) == 3
    first = store.events()[0].id
    assert [e.kind for e in store.events(after_id=first)] == ["dropped", "undelivered"]
    with pytest.raises(UsageError):
        store.record_event("a", "")
    with pytest.raises(UsageError, match="no event kind 'note'"):
        store.record_event("a", "note")  # the kinds are one enum: a typo is refused
    with pytest.raises(UsageError, match="no event kind"):
        store.events(kind="claimd")
    assert len(store.events()) == 3


def test_stats(store: CardStore) -> None:
    store.create_many([new("a"), new("b"), new("c", depends_on=("a",))])
    token = claimed(store, "d")
    store.complete("d", token)
    store.claim("w2", None, "h1", 0, card_id="a")
    stats = wait_until(lambda: (s := store.stats())["expired_leases"] == 1 and s, what="expiry")
    assert stats["counts"] == {"ready": 2, "claimed": 1, "blocked": 0, "done": 1, "failed": 0}
    assert stats["total"] == 4 and stats["ready_to_claim"] == 1
    assert stats["claims_last_minute"] == 2 and stats["completions_last_minute"] == 1
    assert stats["oldest_ready_age"] >= 0 and stats["paused"] is False


def test_pause_and_resume(store: CardStore) -> None:
    assert store.pause_state().paused is False
    state = store.pause("maintenance", "ops")
    assert (state.paused, state.reason, state.by) == (True, "maintenance", "ops")
    assert state.at is not None and store.pause_state() == state
    assert store.stats()["paused"] is True
    assert store.resume("ops").paused is False
    assert [e.kind for e in store.events()] == ["paused", "resumed"]


def test_agent_statuses_upsert(store: CardStore) -> None:
    now = store.now()
    rows = [
        AgentStatus(
            "t1",
            "hA",
            "w1",
            "claude",
            "coder",
            now,
            True,
            "ok",
            True,
            10,
            "claude",
            2.5,
            "available",
            None,
        ),
        AgentStatus("t1", "hB", "w2", readiness="dead"),
    ]
    store.upsert_agent_statuses(rows)
    store.upsert_agent_statuses(
        [AgentStatus("t1", "hA", "w1", readiness="working", current_card="a", pane_alive=True)]
    )
    got = store.agent_statuses()
    assert [(a.host, a.agent, a.readiness) for a in got] == [
        ("hA", "w1", "working"),
        ("hB", "w2", "dead"),
    ]
    assert got[0].current_card == "a" and got[0].updated_at is not None
    assert [a.agent for a in store.agent_statuses(host="hB")] == ["w2"]
    store.upsert_agent_statuses([])


def test_on_change_hook_after_commit(store_url: str) -> None:
    seen: list[str] = []
    with CardStore(store_url, tenant="t9", on_change=seen.append) as store:
        store.create(new("a"))
        claim = store.claim("w", None, "h", 60)
        assert claim is not None
        with pytest.raises(StaleTokenError):
            store.complete("a", 99)
        store.complete("a", claim.token)
        store.pause("x", "y")
    assert seen == ["created", "claimed", "done", "paused"]


def test_on_change_failure_does_not_undo(store_url: str) -> None:
    def boom(kind: str) -> None:
        raise RuntimeError(kind)

    with CardStore(store_url, tenant="t8", on_change=boom) as store:
        store.create(new("a"))
        assert store.get("a").status is CardStatus.READY
