"""Random sequences of store operations, checking the invariants after every step:

- a card has a live lease exactly when it is claimed (one owner, one expiry, one token);
- a card's token only grows, by one per claim;
- a done card never changes again;
- a refused operation changes nothing;
- ``unmet_deps`` always equals the number of dependencies not done.

Runs on SQLite and PostgreSQL; each example is a fresh tenant of one database.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from fleet_queue.cards import Card, CardStatus, ClaimRequest, NewCard
from fleet_queue.errors import FleetError
from fleet_queue.store import CardStore

IDS = ["a", "b", "c", "d", "e"]
AGENTS = ["w1", "w2", "w3"]
TOKEN_OPS = ["complete", "fail", "release", "renew", "deliver"]


def machine_for(url: str) -> type[RuleBasedStateMachine]:
    shared = CardStore(url, tenant="unused", host="h")

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store = CardStore(
                url,
                tenant=f"t{uuid.uuid4().hex[:10]}",
                host="h",
                engine=shared.engine,
                migrate_schema=False,
            )
            self.tokens: dict[str, int] = {}
            self.claims: dict[str, int] = {}
            self.done: dict[str, Card] = {}

        @initialize()
        def seed_a_small_dag(self) -> None:
            """a <- b <- c: so completions have dependents to unlock from the first step."""
            self.store.create_many(
                [
                    NewCard(id="a", title="a"),
                    NewCard(id="b", title="b", depends_on=("a",)),
                    NewCard(id="c", title="c", depends_on=("a", "b")),
                ]
            )

        def cards(self) -> dict[str, Card]:
            return {c.id: c for c in self.store.list()}

        def refused_changes_nothing(self, action: Any) -> None:
            before = self.cards()
            try:
                action()
            except FleetError:
                assert self.cards() == before, "a refused operation changed the store"

        @rule(card_id=st.sampled_from(IDS), data=st.data())
        def create(self, card_id: str, data: st.DataObject) -> None:
            known = sorted(self.cards())
            pool = st.sampled_from([*known, "ghost"]) if known else st.just("ghost")
            deps = data.draw(st.lists(pool, max_size=2, unique=True))
            self.refused_changes_nothing(
                lambda: self.store.create(
                    NewCard(id=card_id, title=card_id, depends_on=tuple(deps))
                )
            )

        @rule(
            agents=st.lists(st.sampled_from(AGENTS), min_size=1, max_size=3),
            ttl=st.sampled_from([0.0, 600.0]),
        )
        def claim(self, agents: list[str], ttl: float) -> None:
            claims = self.store.claim_batch([ClaimRequest(a, None, "h", ttl) for a in agents])
            assert len({c.card.id for c in claims}) == len(claims)
            assert len({c.agent for c in claims}) == len(claims)
            for claim in claims:
                self.claims[claim.card.id] = self.claims.get(claim.card.id, 0) + 1
                assert claim.token == self.claims[claim.card.id], "token must grow by one per claim"

        @rule(
            card_id=st.sampled_from(IDS),
            op=st.sampled_from(TOKEN_OPS),
            delta=st.sampled_from([0, 0, -1, 1]),
        )
        def lease_op(self, card_id: str, op: str, delta: int) -> None:
            card = self.cards().get(card_id)
            token = (card.token if card else 1) + delta
            calls = {
                "complete": lambda: self.store.complete(card_id, token),
                "fail": lambda: self.store.fail(card_id, token, "no"),
                "release": lambda: self.store.release(card_id, token, "busy"),
                "renew": lambda: self.store.renew(card_id, token, 600),
                "deliver": lambda: self.store.mark_delivered(card_id, token),
            }
            fresh = card is not None and card.status is CardStatus.CLAIMED and delta == 0
            if fresh and op in ("renew", "deliver"):  # the fence includes time
                assert card is not None and card.lease_expires_at is not None
                fresh = card.lease_expires_at > self.store.now()
            if fresh:
                calls[op]()
            else:
                self.refused_changes_nothing(calls[op])

        @rule(result=st.sampled_from(["done", "failed"]))
        def finish_a_claimed_card(self, result: str) -> None:
            """The lease holder's happy path, so dependents get unlocked often."""
            claimed = [c for c in self.cards().values() if c.status is CardStatus.CLAIMED]
            if not claimed:
                return
            card = claimed[0]
            if result == "done":
                self.store.complete(card.id, card.token)
            else:
                self.store.fail(card.id, card.token, "gave up")

        @rule()
        def reclaim(self) -> None:
            self.store.reclaim_expired()

        @rule(card_id=st.sampled_from(IDS), unblock=st.booleans())
        def block(self, card_id: str, unblock: bool) -> None:
            action = self.store.unblock if unblock else self.store.block
            self.refused_changes_nothing(lambda: action(card_id))

        @rule(card_id=st.sampled_from(IDS), dep=st.sampled_from(IDS))
        def link(self, card_id: str, dep: str) -> None:
            self.refused_changes_nothing(lambda: self.store.link(card_id, dep))

        @invariant()
        def leases_tokens_and_done_cards(self) -> None:
            cards = self.cards()
            for card in cards.values():
                live = card.status is CardStatus.CLAIMED
                assert live == (card.lease_expires_at is not None), card
                if live:
                    assert card.lease_owner is not None and card.host is not None
                assert card.token >= self.tokens.get(card.id, 0), "a token went down"
                self.tokens[card.id] = card.token
                assert card.token == self.claims.get(card.id, 0)
                if card.id in self.done:
                    assert card == self.done[card.id], "a done card changed"
                elif card.status is CardStatus.DONE:
                    self.done[card.id] = card
                unmet = sum(1 for d in card.depends_on if cards[d].status is not CardStatus.DONE)
                assert card.unmet_deps == unmet, card

        def teardown(self) -> None:
            pass  # the shared engine outlives the example

    return StoreMachine


@pytest.mark.timeout(240)
def test_random_operations_keep_invariants(store_url: str) -> None:
    machine = machine_for(store_url)
    examples = 60 if store_url.startswith("sqlite") else 25
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
