"""Eight processes claim from one backlog at once: every card claimed exactly once, none lost."""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter

from fleet_queue.cards import CardStatus, NewCard
from fleet_queue.store import CardStore

CARDS = 2000
CLAIMERS = 8


def _claim_all(url: str, agent: str, batch: bool) -> list[tuple[str, int]]:
    """Claim until the backlog is empty; half the claimers use claim_batch of one."""
    from fleet_queue.cards import ClaimRequest

    got: list[tuple[str, int]] = []
    with CardStore(url, tenant="race", host=f"host-{agent}") as store:
        while True:
            if batch:
                claims = store.claim_batch([ClaimRequest(agent, None, "h", 600)])
                claim = claims[0] if claims else None
            else:
                claim = store.claim(agent, None, "h", 600)
            if claim is None:
                return got
            got.append((claim.card.id, claim.token))


def test_eight_processes_claim_each_card_exactly_once(store_url: str) -> None:
    with CardStore(store_url, tenant="race", host="h") as store:
        store.create_many(
            NewCard(id=f"c{i:04d}", title=f"card {i}", priority=i % 5) for i in range(CARDS)
        )
    ctx = mp.get_context("spawn")
    with ctx.Pool(CLAIMERS) as pool:
        jobs = [
            pool.apply_async(_claim_all, (store_url, f"agent{n}", n % 2 == 0))
            for n in range(CLAIMERS)
        ]
        results = [job.get(timeout=240) for job in jobs]
    claimed = Counter(card_id for result in results for card_id, _ in result)
    assert len(claimed) == CARDS, "a card was lost"
    assert max(claimed.values()) == 1, "a card was claimed twice"
    assert all(token == 1 for result in results for _, token in result)
    assert sum(1 for result in results if result) >= 2, "claims did not run concurrently"
    with CardStore(store_url, tenant="race", host="h") as store:
        stats = store.stats()
        assert stats["counts"][CardStatus.CLAIMED.value] == CARDS
        assert len(store.events(kind="claimed", limit=None)) == CARDS
