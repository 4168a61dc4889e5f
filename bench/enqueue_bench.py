"""(c) Bulk enqueue into the store vs Celery ``apply_async``, and vs a plain INSERT.

The store side is ``CardStore.create_many`` of 100k cards in one call (dependency
edges and one ``created`` event per card), on SQLite and PostgreSQL. The baseline
sends no-op tasks with ``apply_async`` to the same Redis as fast as one process can
(no worker consumes them; the queue is deleted afterwards). ``apply_async`` is
linear in the count (one round trip per message), so its rate is measured on a
shorter run per repetition to keep the whole harness under 15 minutes. The second
baseline is the database's own floor: a plain ``executemany`` INSERT of the same number of
rows into a bare table of the same database, in the same repetition.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redis

from bench.common import Figure, Stats
from bench.store_bench import bulk_raw, bulk_store
from tests.support.servers import postgres_server, redis_server


def apply_async_rate(broker_url: str, tasks: int) -> float:
    from bench import bare_app

    noop = bare_app.app_for(broker_url).tasks[bare_app.NOOP]
    noop.apply_async(args=(0,))  # connect before the clock starts
    start = time.perf_counter()
    for _ in range(tasks):
        noop.apply_async(args=(0,))
    elapsed = time.perf_counter() - start
    redis.Redis.from_url(broker_url).delete(bare_app.QUEUE)
    return tasks / elapsed


def run(quick: bool = False) -> list[Figure]:
    cards = 5_000 if quick else 100_000
    tasks = 2_000 if quick else 25_000
    reps = 2 if quick else 3
    with redis_server() as srv:
        baseline = Stats.of([apply_async_rate(srv.url, tasks) for _ in range(reps)])
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    raw: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory(prefix="fqb-enqueue-") as tmp:
        for rep in range(reps):
            url = f"sqlite:///{Path(tmp) / f'e{rep}.db'}"
            rates["sqlite"].append(bulk_store(url, cards))
            raw["sqlite"].append(bulk_raw(url, cards))
    with postgres_server() as pg:
        for rep in range(reps):
            url = pg.create_database(f"enqueue{rep}")
            rates["postgresql"].append(bulk_store(url, cards))
            raw["postgresql"].append(bulk_raw(url, cards))
    figures = []
    for backend, samples in rates.items():
        ours = Stats.of(samples)
        extra = {"cards": cards, "tasks_per_rep": tasks}
        figures.append(
            Figure(
                "enqueue",
                f"(c) bulk enqueue {cards:,} cards, {backend}",
                "cards/s",
                ours,
                f"apply_async no-op, one process ({tasks:,} per rep)",
                baseline,
                aim="≥ 10 × apply_async",
                extra=extra,
            )
        )
        figures.append(
            Figure(
                "enqueue",
                f"(c) bulk enqueue {cards:,} cards vs a plain INSERT, {backend}",
                "cards/s",
                ours,
                "executemany INSERT of as many rows into a bare table",
                Stats.of(raw[backend]),
                extra=extra,
            )
        )
    return figures
