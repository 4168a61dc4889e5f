"""The tick reads only what it needs, and gives the same cards as claiming for every free agent.

``run_tick`` reads the lanes with claimable cards first and then only the status rows of
agents that could take them (a few at a time when the cards are few). What a user relies
on: each card still goes where ``claim_batch`` over every available agent would send it
(own lane, then class, then everyone's, in roster order; delegating classes only when
aimed at), and a tick with nothing to claim, or one card among many free agents, does
not read the whole fleet's rows.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleet_queue.cards import AgentStatus, CardStatus, Claim, NewCard
from fleet_queue.roster import Roster, parse_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from fleet_queue.supervisor import FIRST_READ, available_agents, claim_requests, run_tick

HOST = "h1"
CLASSES = ("coder", "writer", "orchestrator", "enhancer")


def roster_of(count: int, seed: int) -> Roster:
    rng = random.Random(seed)
    agents = []
    for n in range(count):
        agents.append(
            {"name": f"a{n:03d}", "runtime": "stub", "host": HOST, "class": rng.choice(CLASSES)}
        )
    return parse_roster({"preset": "minimal", "agents": agents}, "tick roster")


def fresh_rows(roster: Roster, tenant: str, down: Collection[str] = ()) -> list[AgentStatus]:
    now = datetime.now(UTC)
    return [
        AgentStatus(
            tenant_id=tenant, host=HOST, agent=a.name, runtime="stub", agent_class=a.agent_class,
            heartbeat_at=now, health=True, heartbeat_status="ok", pane_alive=a.name not in down,
            readiness="available", updated_at=now,
        )
        for a in roster.agents
    ]  # fmt: skip


class RowCounter:
    """The store's ``tick_agents``, counting the rows the tick asked for."""

    def __init__(self, store: CardStore) -> None:
        self.asked = 0
        self._read = store.tick_agents

    def __call__(self, names: list[str]) -> list[AgentStatus]:
        self.asked += len(names)
        return self._read(names)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, host=HOST, tenant="t1", lease_ttl=120.0)


def given(claims: list[Claim]) -> dict[str, str]:
    return {c.agent: c.card.id for c in claims}


def every_free_agent(store: CardStore, roster: Roster, settings: Settings) -> dict[str, str]:
    """What the tick gave before it read only what it needs: one claim per free agent."""
    view = store.tick_view(cap=len(roster.agents))
    rows = store.tick_agents(roster.names())
    free = available_agents(roster.agents, rows, view.leased, settings)
    claims = store.claim_batch(claim_requests(free, roster, settings.lease_ttl))
    for claim in claims:  # back to ready, same priority and order: the tick sees them again
        store.release(claim.card.id, claim.token, "compared")
    return given(claims)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_tick_gives_each_card_where_claiming_for_every_free_agent_would(
    store: CardStore, settings: Settings, seed: int
) -> None:
    rng = random.Random(seed)
    roster = roster_of(60, seed)
    names = roster.names()
    down = set(rng.sample(names, 8))  # dead panes: never asked for
    store.upsert_agent_statuses(fresh_rows(roster, "t1", down))
    cards = []
    for i in range(rng.randint(5, 40)):
        lane = rng.random()
        agent = rng.choice(names) if lane < 0.2 else None
        agent_class = rng.choice(CLASSES) if 0.2 <= lane < 0.6 else None
        cards.append(
            NewCard(
                id=f"k{i:02d}", title="x", priority=rng.randint(0, 3),
                target_agent=agent, target_class=agent_class,
            )
        )  # fmt: skip
    store.create_many(cards)
    busy = store.claim(names[0], None, HOST, 120)  # a lease: a busy agent gets nothing
    assert busy is not None
    expected = every_free_agent(store, roster, settings)
    got: list[Claim] = []
    result = run_tick(store, roster, settings, got.append)
    assert given(got) == expected
    assert result.claims and len(result.claims) == len(got)
    assert names[0] not in given(got) and not down & set(given(got))


def test_one_card_among_many_free_agents_reads_a_few_rows_and_goes_to_the_first(
    store: CardStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    roster = parse_roster(
        {
            "preset": "minimal",
            "agents": [
                {"name": "lead", "runtime": "stub", "class": "orchestrator", "host": HOST},
                *(
                    {"name": f"w{n:03d}", "runtime": "stub", "class": "coder", "host": HOST}
                    for n in range(200)
                ),
            ],
        },
        "tick roster",
    )
    store.upsert_agent_statuses(fresh_rows(roster, "t1"))
    counter = RowCounter(store)
    monkeypatch.setattr(store, "tick_agents", counter)
    got: list[Claim] = []
    assert run_tick(store, roster, settings, got.append).claims == []
    assert counter.asked == 0, "no claimable card: no agent row read"
    store.create(NewCard(id="one", title="anyone's"))
    run_tick(store, roster, settings, got.append)
    assert given(got) == {"w000": "one"}  # the orchestrator takes no untargeted card
    assert counter.asked <= FIRST_READ
    store.create(NewCard(id="mine", title="aimed", target_agent="w150"))
    run_tick(store, roster, settings, got.append)
    assert given(got)["w150"] == "mine"


def test_tick_view_counts_the_lanes_with_claimable_cards(store: CardStore) -> None:
    assert store.tick_view(cap=5).lanes == {}
    store.create_many(
        [NewCard(id=f"u{i}", title="x") for i in range(7)]
        + [NewCard(id="c1", title="x", target_class="coder")]
        + [NewCard(id=f"t{i}", title="x", target_agent="w1") for i in range(3)]
        + [NewCard(id="later", title="x", target_class="writer", depends_on=("u0",))]
    )
    store.block("u6", "parked")
    assert store.get("u6").status is CardStatus.BLOCKED
    # everyone's lane counted up to the cap; an agent's own lane gives it one card
    assert store.tick_view(cap=5).lanes == {"": 5, "c:coder": 1, "a:w1": 1}
