"""(i) Scale: 10 → 100 → 1,000 agents (1, 1 and 10 host workers), all in the same run.

    python -m bench.scale_bench [--quick]          # or: python -m bench --only scale

The fleet is ``bench.scale_fleet``: real Celery host workers (one process per simulated
host, each its own tmux server), one Redis, one PostgreSQL, line-reading ``bash``
panes. Each size is its own fleet, started and stopped in turn; the 10-agent one is
the baseline. Measured at every size (``growth`` in the JSON, drawn by
``bench.scale_plot``):

- enqueue → text in a pane, one card at a time into a fleet of idle agents (the pane's
  own receive time), p50 and p99, and enqueue → claimed (the nudge and the tick);
- the supervisor tick as the fleet ran it (the workers' log: ticks that claimed a card);
- broker and store load per card in that phase (Redis commands, PostgreSQL commits,
  the status rounds included) and the status round's time per agent (the workers' log);
- host worker RSS (median over hosts) beside a bare Celery worker's, same Redis;
- with the workers stopped, the supervisor tick as the Celery task runs it (``run_tick``)
  over the large fleet's roster with ``ready`` cards, at 10, 100 and all agents
  available (fresh status rows), and the claims per second inside that tick; and at
  all agents of which only 10 are available (the rest working): a busy fleet's tick.

``--quick``: 4, 10 and 20 agents (1, 1, 2 hosts), 2,000 ready cards, about a minute.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import TYPE_CHECKING, Any

import redis

from bench.common import Figure, Stats, fmt_num, percentile, tree_rss_mib
from bench.fleet_bench import bare_drain, bare_worker
from bench.scale_fleet import ScaleFleet, scale_fleet, wait_received
from bench.tick_bench import add_cards, statuses
from fleet_queue.cards import NewCard
from fleet_queue.supervisor import claim_requests, run_tick
from tests.support.servers import postgres_server, redis_server

if TYPE_CHECKING:
    from fleet_queue.cards import Claim
    from fleet_queue.store import CardStore

QUIET = 0.6
"""Dispatch types into a line reader's pane only 0.5 s after its last output; the next card
goes to the same agent (first in the claim order), so each sample waits this long."""
STATUS_LOG = re.compile(r"fleet\.collect_host_status\[[^\]]+\] succeeded in ([0-9.]+)s")
RUN_TICK_MS = re.compile(r"'ms': ([0-9.]+)")
TICK_LOG = re.compile(r"fleet\.supervisor_tick\[[^\]]+\] succeeded in ([0-9.]+)s: (.*)")


@dataclass
class Params:
    sizes: tuple[tuple[int, int], ...] = ((1, 10), (1, 100), (10, 1000))
    """(hosts, agents) of each fleet, smallest first: the first is the baseline."""
    samples: tuple[int, ...] = (20, 40, 60)
    """Latency samples at each size."""
    ready: int = 100_000
    ticks: tuple[tuple[int, int], ...] = (
        (10, 10), (100, 100), (1000, 1000), (100, 10), (1000, 10)
    )  # fmt: skip
    """(agents with fresh status rows, of them available): all free, then a busy fleet."""
    tick_reps: int = 5

    @property
    def small(self) -> tuple[int, int]:
        return self.sizes[0]

    @property
    def large(self) -> tuple[int, int]:
        return self.sizes[-1]

    @classmethod
    def quick(cls) -> Params:
        return cls(
            sizes=((1, 4), (1, 10), (2, 20)), samples=(5, 5, 10), ready=2_000,
            ticks=((4, 4), (10, 10), (20, 20), (20, 4)), tick_reps=2,
        )  # fmt: skip


@dataclass
class FleetRun:
    hosts: int
    agents: int
    latencies: list[float]
    to_claim: list[float]
    rss: list[float]
    redis_per_card: float
    commits_per_card: float
    status_ms_per_agent: float | None
    fleet_ticks: tuple[list[float], list[float]]
    """ms of each supervisor tick that claimed a card, as the workers ran it (their log):
    the task, and of it ``run_tick``."""

    def growth(self, ticks: Ticks) -> dict[str, Any]:
        """This size's row of the growth table (``bench.scale_plot`` draws it)."""
        free = ticks.get((self.agents, self.agents))
        busy = ticks.get((self.agents, 10)) or (free if self.agents <= 10 else None)
        ordered = sorted(self.latencies)
        return {
            "hosts": self.hosts,
            "agents": self.agents,
            "p50_ms": median(ordered),
            "p99_ms": percentile(ordered, 0.99),
            "to_claim_p50_ms": median(self.to_claim),
            "fleet_tick_ms": median(self.fleet_ticks[0]) if self.fleet_ticks[0] else None,
            "fleet_run_tick_ms": median(self.fleet_ticks[1]) if self.fleet_ticks[1] else None,
            "tick_all_free_ms": median(free[0]) if free else None,
            "claims_per_s": median(free[1]) if free else None,
            "tick_10_free_ms": median(busy[0]) if busy else None,
            "status_round_ms_per_agent": self.status_ms_per_agent,
            "redis_commands_per_card": self.redis_per_card,
            "pg_commits_per_card": self.commits_per_card,
            "rss_mib": median(self.rss),
        }


def latencies(
    fleet: ScaleFleet, prefix: str, samples: int, to_claim: list[float] | None = None
) -> list[float]:
    """ms from enqueue to the pane's receive time (and to the claim, in ``to_claim``: the
    nudge and the tick); the harness closes each card."""
    out = []
    for i in range(samples):
        card = f"{prefix}{i:04d}"
        start = time.time()
        fleet.store.create(NewCard(id=card, title=f"scale {i}"))
        received = wait_received(fleet.log, card)
        out.append((received - start) * 1000)
        if to_claim is not None:
            claimed = fleet.store.events(card_id=card, kind="claimed", limit=None)
            to_claim.append((claimed[0].at.timestamp() - start) * 1000)
        token = fleet.store.get(card).token
        fleet.store.complete(card, token)
        time.sleep(QUIET)  # into an idle fleet: the pane just typed into has gone quiet
    return out


def commits(store_url: str) -> int:
    import psycopg

    conninfo = store_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def redis_commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def status_ms_per_agent(fleet: ScaleFleet) -> float | None:
    """Median host-status round time over every host's log, per agent of that host."""
    per_agent = []
    for host in fleet.hosts:
        log = host.settings.home / "logs" / "worker.log"
        rounds = [float(s) for s in STATUS_LOG.findall(log.read_text(errors="replace"))]
        if rounds and host.agents:
            per_agent.append(1000 * median(rounds) / len(host.agents))
    return median(per_agent) if per_agent else None


def claiming_ticks(fleet: ScaleFleet) -> tuple[list[float], list[float]]:
    """ms of every supervisor tick in the workers' logs that claimed a card: the whole task
    (``succeeded in``), and of it ``run_tick`` (the result's ``ms``)."""
    whole, inner = [], []
    for host in fleet.hosts:
        log = host.settings.home / "logs" / "worker.log"
        for seconds, result in TICK_LOG.findall(log.read_text(errors="replace")):
            if "'claimed': ['" in result:
                whole.append(1000 * float(seconds))
                found = RUN_TICK_MS.search(result)
                if found:
                    inner.append(float(found.group(1)))
    return whole, inner


def measure_fleet(
    root: Path, broker: str, db: str, hosts: int, agents: int, samples: int, prefix: str
) -> tuple[FleetRun, ScaleFleet | None]:
    client = redis.Redis.from_url(broker)
    with scale_fleet(root, broker, db, hosts, agents) as fleet:
        latencies(fleet, f"{prefix}w", 3)  # warm up the connections of every process
        rss = [tree_rss_mib(pid) for pid in fleet.worker_pids()]
        r0, c0 = redis_commands(client), commits(db)
        to_claim: list[float] = []
        lat = latencies(fleet, prefix, samples, to_claim)
        r1, c1 = redis_commands(client), commits(db)
        run = FleetRun(
            hosts, agents, lat, to_claim, rss, (r1 - r0) / samples, (c1 - c0) / samples,
            status_ms_per_agent(fleet), claiming_ticks(fleet),
        )  # fmt: skip
        return run, fleet


Ticks = dict[tuple[int, int], tuple[list[float], list[float]]]


def tick_samples(fleet: ScaleFleet, params: Params) -> Ticks:
    """(tick ms, claims/s) at each (agents, available), the workers stopped, ``ready`` cards;
    the agents not available hold a card each (an open lease: busy, as the tick sees it)."""
    store, roster = fleet.store, fleet.roster
    settings = fleet.hosts[0].settings
    next_id = add_cards(store, 0, params.ready)
    names = roster.names()
    out: Ticks = {}
    for count, free in params.ticks:
        sub = roster.model_copy(update={"agents": [roster.agent(n) for n in names[:count]]})
        busy = store.claim_batch(
            claim_requests(statuses(sub, settings.tenant)[free:], sub, settings.lease_ttl)
        )
        ms, rates = [], []
        for rep in range(params.tick_reps + 1):  # the first is a warm-up
            store.upsert_agent_statuses(statuses(sub, settings.tenant))
            claims: list[Claim] = []
            started = time.perf_counter()
            run_tick(store, sub, settings, claims.append)
            seconds = time.perf_counter() - started
            assert len(claims) == free, f"the tick claimed {len(claims)} for {free} agents"
            if rep:
                ms.append(seconds * 1000)
                rates.append(free / seconds)
            next_id = close(store, claims, next_id)
        next_id = close(store, busy, next_id)
        out[(count, free)] = (ms, rates)
    return out


def close(store: CardStore, claims: list[Claim], next_id: int) -> int:
    """Complete the claims and enqueue as many new cards: the ready count stays put."""
    for claim in claims:
        store.complete(claim.card.id, claim.token)
    return add_cards(store, next_id, len(claims))


def run(quick: bool = False) -> list[Figure]:
    p = Params.quick() if quick else Params()
    with (
        tempfile.TemporaryDirectory(prefix="fqb-scale-") as tmp,
        redis_server() as srv,
        postgres_server() as pg,
    ):
        root = Path(tmp)
        (root / "logs").mkdir()
        with bare_worker(srv.url, root / "logs") as bare:
            bare_drain(srv.url, 200)
            bare_rss = tree_rss_mib(bare.pid)
        runs: list[FleetRun] = []
        fleet: ScaleFleet | None = None
        for n, ((hosts, agents), samples) in enumerate(zip(p.sizes, p.samples, strict=True)):
            name = f"f{agents}"
            run_n, fleet = measure_fleet(
                root / name, srv.url, pg.create_database(name), hosts, agents, samples, f"s{n}"
            )
            runs.append(run_n)
        assert fleet is not None  # the largest, its workers stopped: the tick has the machine
        from fleet_queue.composition import open_card_store

        fleet.store = open_card_store(fleet.hosts[0].settings, on_change=lambda _kinds: None)
        try:
            ticks = tick_samples(fleet, p)
        finally:
            fleet.store.close()
    return figures(p, runs, ticks, bare_rss)


def figures(p: Params, runs: list[FleetRun], ticks: Ticks, bare_rss: float) -> list[Figure]:
    small, large = runs[0], runs[-1]
    sh, sa = p.small
    lh, la = p.large
    where = f"{la:,} agents over {lh} hosts"
    base_where = f"{sa} agents on {sh} host"
    extra: dict[str, Any] = {
        "p99_ms": percentile(sorted(large.latencies), 0.99),
        "baseline_p99_ms": percentile(sorted(small.latencies), 0.99),
        "samples": large.latencies,
        "baseline_samples": small.latencies,
        "enqueue_to_claim_p50_ms": median(large.to_claim),
        "baseline_enqueue_to_claim_p50_ms": median(small.to_claim),
        "redis_commands_per_card": large.redis_per_card,
        "baseline_redis_commands_per_card": small.redis_per_card,
        "pg_commits_per_card": large.commits_per_card,
        "baseline_pg_commits_per_card": small.commits_per_card,
        "status_round_ms_per_agent": large.status_ms_per_agent,
        "baseline_status_round_ms_per_agent": small.status_ms_per_agent,
        "growth": [r.growth(ticks) for r in runs],
        "bare_rss_mib": bare_rss,
    }
    out = [
        Figure(
            "scale", f"(i) enqueue → pane latency p50, {where}", "ms",
            Stats.of(large.latencies), f"p50 at {base_where}", Stats.of(small.latencies),
            higher_is_better=False, aim="p50 ≤ 25 ms, p99 ≤ 100 ms", extra=extra,
        ),
        Figure(
            "scale", f"(i) host worker RSS, median of {lh} hosts, {la // lh} agents each", "MiB",
            Stats.of(large.rss), "bare Celery worker RSS", Stats.of([bare_rss]),
            higher_is_better=False, aim="≤ 1.2 × bare",
            extra={"samples": large.rss, "small_fleet_rss": small.rss},
        ),
    ]  # fmt: skip
    for mid in runs[1:-1]:
        out.append(
            Figure(
                "scale", f"(i) enqueue → pane latency p50, {mid.agents:,} agents over "
                f"{mid.hosts} host{'s' if mid.hosts > 1 else ''}", "ms",
                Stats.of(mid.latencies), f"p50 at {base_where}", Stats.of(small.latencies),
                higher_is_better=False, extra={"samples": mid.latencies},
            )
        )  # fmt: skip
    first = p.ticks[0]
    base_ms = Stats.of(ticks[first][0])
    for (count, free), (ms, rates) in ticks.items():
        which = f"{count:,} agents" + (f" ({free} available)" if free != count else "")
        out.append(
            Figure(
                "scale",
                f"(i) supervisor tick, {which}, {p.ready:,} ready, postgresql",
                "ms", Stats.of(ms),
                f"tick at {first[0]} agents" if count != first[0] else None,
                base_ms if count != first[0] else None,
                higher_is_better=False, aim="≤ 50 ms at 1,000 agents",
                extra={"samples": ms, "claims_per_s": rates},
            )
        )  # fmt: skip
    most = max(p.ticks, key=lambda pair: pair[1])
    out.append(
        Figure(
            "scale", f"(i) claims/s inside one tick, {most[1]:,} agents", "claims/s",
            Stats.of(ticks[most][1]), f"at {first[1]} agents", Stats.of(ticks[first][1]),
            extra={"samples": ticks[most][1]},
        )
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for f in run(args.quick):
        base = f" | {f.baseline_name}: {fmt_num(f.baseline.median)}" if f.baseline else ""
        print(f"{f.name}: {fmt_num(f.value.median)} {f.unit}{base}")
        for key in ("p99_ms", "baseline_p99_ms", "enqueue_to_claim_p50_ms",
                    "baseline_enqueue_to_claim_p50_ms", "redis_commands_per_card",
                    "pg_commits_per_card", "status_round_ms_per_agent"):  # fmt: skip
            if key in f.extra:
                print(f"  {key}: {f.extra[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
