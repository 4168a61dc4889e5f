"""(d) One supervisor tick (``run_tick``) with 100 available agents over 1k, 10k, 100k ready cards.

The whole tick as the Celery task runs it, minus the Celery send: pause check, agent
status rows, database clock, lease owners, one ``claim_batch`` for 100 agents. The
roster (100 stub agents, two classes) is built in memory; their status rows are
upserted as fresh, alive and healthy before every tick. After each timed tick its
100 claims are completed and 100 new cards enqueued, so every tick sees the same
ready count and 100 idle agents. The baseline of each size is the tick at 1k.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import Figure, Stats
from fleet_queue.cards import AgentStatus, NewCard
from fleet_queue.roster import Roster, parse_roster
from fleet_queue.settings import Settings
from fleet_queue.store import CardStore
from fleet_queue.supervisor import run_tick
from tests.support.servers import postgres_server

if TYPE_CHECKING:
    from fleet_queue.cards import Claim

AGENTS = 100
HOST = "bench"


def roster_of(agents: int) -> Roster:
    return parse_roster(
        {
            "preset": "minimal",
            "agents": [
                {"name": f"a{n:03d}", "runtime": "stub", "class": "coder" if n % 2 else "writer"}
                for n in range(agents)
            ],
        },
        "bench roster",
    )


def statuses(roster: Roster, tenant: str) -> list[AgentStatus]:
    now = datetime.now(UTC)
    return [
        AgentStatus(
            tenant_id=tenant,
            host=a.host or HOST,
            agent=a.name,
            runtime="stub",
            agent_class=a.agent_class,
            heartbeat_at=now,
            health=True,
            heartbeat_status="ok",
            pane_alive=True,
            readiness="available",
            updated_at=now,
        )
        for a in roster.agents
    ]


def add_cards(store: CardStore, start: int, count: int) -> int:
    store.create_many(
        NewCard(
            id=f"t{i:07d}",
            title=f"tick {i}",
            priority=i % 10,
            target_class="coder" if i % 3 == 0 else None,
        )
        for i in range(start, start + count)
    )
    return start + count


def tick_ms(
    store: CardStore, roster: Roster, settings: Settings, reps: int, next_id: int
) -> tuple[list[float], int]:
    samples = []
    for _ in range(reps):
        store.upsert_agent_statuses(statuses(roster, settings.tenant))
        claims: list[Claim] = []
        started = time.perf_counter()
        run_tick(store, roster, settings, claims.append)
        samples.append((time.perf_counter() - started) * 1000)
        assert len(claims) == AGENTS, f"the tick claimed {len(claims)} for {AGENTS} agents"
        for claim in claims:
            store.complete(claim.card.id, claim.token)
        next_id = add_cards(store, next_id, len(claims))
    return samples, next_id


def bench_backend(url: str, sizes: list[int], reps: int) -> dict[int, list[float]]:
    settings = Settings(home=Path(tempfile.gettempdir()), host=HOST)
    roster = roster_of(AGENTS)
    out: dict[int, list[float]] = {}
    with CardStore(url, tenant=settings.tenant, host=HOST) as store:
        next_id, ready = 0, 0
        for size in sizes:
            next_id = add_cards(store, next_id, size - ready)
            ready = size
            _, next_id = tick_ms(store, roster, settings, 1, next_id)  # warm up at this size
            out[size], next_id = tick_ms(store, roster, settings, reps, next_id)
    return out


def run(quick: bool = False) -> list[Figure]:
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    reps = 3 if quick else 7
    results: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fqb-tick-") as tmp:
        results["sqlite"] = bench_backend(f"sqlite:///{Path(tmp) / 'tick.db'}", sizes, reps)
    with postgres_server() as pg:
        results["postgresql"] = bench_backend(pg.create_database("tick"), sizes, reps)
    figures = []
    for backend, by_size in results.items():
        base = Stats.of(by_size[sizes[0]])
        for size, samples in by_size.items():
            figures.append(
                Figure(
                    "tick",
                    f"(d) supervisor tick, {AGENTS} agents, {size:,} ready, {backend}",
                    "ms",
                    Stats.of(samples),
                    f"tick at {sizes[0]:,} ready" if size != sizes[0] else None,
                    base if size != sizes[0] else None,
                    higher_is_better=False,
                    aim="≤ 50 ms and ≤ 2 × tick at 1k",
                    extra={"samples": samples},
                )
            )
    return figures
