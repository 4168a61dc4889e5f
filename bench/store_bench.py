"""Card store benchmark: each store figure beside the raw figure of the same database, same run.

    python -m bench.store_bench [--cards 100000] [--claims 3000] [--claimers 4]

For SQLite (a WAL file) and PostgreSQL (started here from initdb/pg_ctl on loopback):

- **bulk import**: ``CardStore.create_many`` of N cards (one transaction, with dependency
  edges and one "created" event per card) beside a plain ``executemany`` INSERT of N rows
  into a bare table;
- **claims/s**: K cards claimed by 4 processes calling ``CardStore.claim`` until empty,
  beside the plain SQL claim on a bare table (SQLite: ``BEGIN IMMEDIATE`` + SELECT + UPDATE;
  PostgreSQL: ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``);
- **tick claim**: one ``claim_batch`` of 100 agents with N ready cards in the store (the
  supervisor tick's store cost; the aim is < 50 ms on SQLite).

``run() -> dict`` returns the figures for the lead's harness; ``main`` prints a table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet_queue.cards import ClaimRequest, NewCard
from fleet_queue.store import CardStore

TENANT = "bench"


# --- bulk import ---------------------------------------------------------------------------


def _new_cards(count: int) -> list[NewCard]:
    cards = []
    for i in range(count):
        deps = (f"b{i - 1:06d}",) if i % 100 == 1 else ()
        cards.append(NewCard(id=f"b{i:06d}", title=f"card {i}", priority=i % 10, depends_on=deps))
    return cards


def bulk_store(url: str, count: int) -> float:
    cards = _new_cards(count)
    with CardStore(url, tenant=TENANT, host="bench") as store:
        start = time.perf_counter()
        result = store.create_many(cards)
        elapsed = time.perf_counter() - start
    assert result.created == count
    return count / elapsed


def bulk_raw(url: str, count: int) -> float:
    rows = [(f"r{i:06d}", f"card {i}", i % 10, "ready") for i in range(count)]
    ddl = "CREATE TABLE raw_bulk (id TEXT PRIMARY KEY, title TEXT, priority INT, status TEXT)"
    insert = "INSERT INTO raw_bulk VALUES ({0}, {0}, {0}, {0})"
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(ddl)
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(insert.format("?"), rows)
        conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return count / elapsed
    import psycopg

    with psycopg.connect(_pg_dsn(url)) as pg:
        pg.execute(ddl)
        pg.commit()
        start = time.perf_counter()
        with pg.cursor() as cur:
            cur.executemany(insert.format("%s"), rows)
        pg.commit()
        elapsed = time.perf_counter() - start
    return count / elapsed


# --- claims/s with several processes ------------------------------------------------------------


def _store_claimer(url: str, agent: str, barrier: Any, out: Any) -> None:
    with CardStore(url, tenant=TENANT, host="bench", migrate_schema=False) as store:
        store.pause_state()  # warm up the connection before the clock starts
        barrier.wait()
        start = time.time()
        count = 0
        while store.claim(agent, None, "bench", 600) is not None:
            count += 1
        out.put((start, time.time(), count))


def _raw_claimer(url: str, agent: str, barrier: Any, out: Any) -> None:
    count = 0
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA synchronous=NORMAL")  # as the store's connections: a fair floor
        barrier.wait()
        start = time.time()
        while True:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT id FROM raw_claim WHERE status='ready' ORDER BY priority DESC, id LIMIT 1"
            ).fetchone()
            if row is None:
                conn.execute("COMMIT")
                break
            conn.execute(
                "UPDATE raw_claim SET status='claimed', owner=?, token=token+1 WHERE id=?",
                (agent, row[0]),
            )
            conn.execute("COMMIT")
            count += 1
        conn.close()
    else:
        import psycopg

        with psycopg.connect(_pg_dsn(url), autocommit=True) as pg:
            barrier.wait()
            start = time.time()
            sql = (
                "UPDATE raw_claim SET status='claimed', owner=%s, token=token+1 WHERE id = ("
                " SELECT id FROM raw_claim WHERE status='ready' ORDER BY priority DESC, id"
                " LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
            )
            while pg.execute(sql, (agent,)).fetchone() is not None:
                count += 1
    out.put((start, time.time(), count))


def _run_claimers(
    target: Callable[[str, str, Any, Any], None], url: str, claimers: int, expected: int
) -> float:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(claimers)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(url, f"agent{n}", barrier, out)) for n in range(claimers)
    ]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    total = sum(r[2] for r in results)
    assert total == expected, f"claimed {total} of {expected}"
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    return float(total / elapsed)


def claims_store(url: str, count: int, claimers: int) -> float:
    with CardStore(url, tenant=TENANT, host="bench") as store:
        store.create_many(
            NewCard(id=f"k{i:06d}", title=f"claim {i}", priority=i % 10, target_class="claims")
            for i in range(count)
        )
    # the claimers ask as class-less agents: move the cards to the common lane
    _exec(url, f"UPDATE cards SET route = '' WHERE tenant_id = '{TENANT}' AND id LIKE 'k%'")
    _exec(url, f"UPDATE cards SET status = 'done' WHERE tenant_id = '{TENANT}' AND id LIKE 'b%'")
    return _run_claimers(_store_claimer, url, claimers, count)


def claims_raw(url: str, count: int, claimers: int) -> float:
    _exec(
        url,
        "CREATE TABLE raw_claim (id TEXT PRIMARY KEY, status TEXT, priority INT,"
        " owner TEXT, token INT DEFAULT 0)",
    )
    _exec(url, "CREATE INDEX ix_raw_claim ON raw_claim (status, priority DESC, id)")
    values = ", ".join(f"('q{i:06d}', 'ready', {i % 10}, NULL, 0)" for i in range(count))
    _exec(url, f"INSERT INTO raw_claim VALUES {values}")
    return _run_claimers(_raw_claimer, url, claimers, count)


# --- the supervisor tick's claim ------------------------------------------------------------


def tick_claim_ms(url: str, count: int, agents: int = 100, rounds: int = 5) -> float:
    """Median ms of one claim_batch for ``agents`` agents over ``count`` ready cards."""
    with CardStore(url, tenant="tick", host="bench") as store:
        store.create_many(
            NewCard(
                id=f"t{i:06d}",
                title="t",
                priority=i % 10,
                target_class="coder" if i % 3 == 0 else None,
            )
            for i in range(count)
        )
        requests = [
            ClaimRequest(f"a{n}", "coder" if n % 2 else None, "bench", 600) for n in range(agents)
        ]
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            claims = store.claim_batch(requests)
            times.append((time.perf_counter() - start) * 1000)
            assert len(claims) == agents
    return statistics.median(times)


# --- plumbing -------------------------------------------------------------------------------


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _exec(url: str, sql: str) -> None:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        conn.execute(sql)
        conn.close()
        return
    import psycopg

    with psycopg.connect(_pg_dsn(url), autocommit=True) as pg:
        pg.execute(sql)


def bench_backend(url: str, cards: int, claims: int, claimers: int) -> dict[str, float]:
    return {
        "bulk_store_cards_per_s": bulk_store(url, cards),
        "bulk_raw_rows_per_s": bulk_raw(url, cards),
        "claims_store_per_s": claims_store(url, claims, claimers),
        "claims_raw_per_s": claims_raw(url, claims, claimers),
        "tick_claim_100_agents_ms": tick_claim_ms(url, cards),
    }


def run(cards: int = 100_000, claims: int = 3000, claimers: int = 4) -> dict[str, Any]:
    """All figures, as ``{"sqlite": {...}, "postgresql": {...}, "params": {...}}``."""
    from tests.support.servers import postgres_server

    figures: dict[str, Any] = {"params": {"cards": cards, "claims": claims, "claimers": claimers}}
    with tempfile.TemporaryDirectory(prefix="fleet-store-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        figures["sqlite"] = bench_backend(url, cards, claims, claimers)
    with postgres_server() as pg:
        url = pg.create_database("store_bench")
        figures["postgresql"] = bench_backend(url, cards, claims, claimers)
    return figures


def print_table(figures: dict[str, Any]) -> None:
    params = figures["params"]
    rows = [
        ("bulk import, cards/s", "bulk_store_cards_per_s", "bulk_raw_rows_per_s"),
        (f"claims/s, {params['claimers']} processes", "claims_store_per_s", "claims_raw_per_s"),
        ("tick claim_batch 100 agents, ms", "tick_claim_100_agents_ms", None),
    ]
    print(f"card store ({params['cards']:,} cards, {params['claims']:,} claims)")
    print(f"{'figure':36} {'backend':11} {'store':>10} {'raw SQL':>10} {'ratio':>6}")
    for label, store_key, raw_key in rows:
        for backend in ("sqlite", "postgresql"):
            got = figures[backend][store_key]
            raw = figures[backend][raw_key] if raw_key else None
            ratio = f"{got / raw:6.2f}" if raw else ""
            raw_text = f"{raw:10,.0f}" if raw else ""
            print(f"{label:36} {backend:11} {got:10,.1f} {raw_text:>10} {ratio:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--claims", type=int, default=3000)
    parser.add_argument("--claimers", type=int, default=4)
    args = parser.parse_args()
    print_table(run(args.cards, args.claims, args.claimers))


if __name__ == "__main__":
    main()
