"""The whole fleet under load: (a) end-to-end cards/s, (b) enqueue → pane latency, (g) worker RSS.

Everything real: a Redis started here, a Celery host worker + beat in subprocesses,
stub agents in tmux on a private socket (``tests.support.fleet.running_fleet``). The
baseline is a bare Celery app (``bench.bare_app``) draining no-op tasks on the same
broker with the same pool, measured in the same run.

(a) ``M`` cards are bulk-enqueued; the figure is ``M / (last delivered - first enqueue)``,
where "delivered" is the store's ``delivered`` event (written after the pane verified
the text), and every card is checked to have reached exactly one stub pane exactly once.
The stubs complete at once (``FLEET_STUB_WORK=0``), in two ways: ``api`` (in-process
store call) and ``cli`` (a ``fleet card done`` process per card, the real agent path).

(b) One card at a time into a fleet of idle agents: enqueue time → the stub's receive
time (``t`` in its log). With the nudge, and with beat only (``FLEET_NUDGE=0``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.common import Figure, Stats, tree_rss_mib
from fleet_queue.cards import Event, NewCard
from tests.support.fleet import Fleet, fleet_settings, running_fleet, stub_roster
from tests.support.poll import wait_until
from tests.support.servers import redis_server
from workers.stub_agent import CARD_RE, log_path

QUIET_AFTER_COMPLETION = 0.7
"""Idle means idle: every pane printed its last line this long ago (dispatch waits 0.5 s)."""


@dataclass
class Params:
    agents: int = 8
    bare_tasks: int = 2000
    cards_api: int = 240
    cards_cli: int = 60
    reps: int = 3
    reps_api: int = 5
    """(a) in-process varies most from run to run on a shared 2-core machine: more reps."""
    latency_samples: int = 30
    beat_samples: int = 15

    @classmethod
    def quick(cls) -> Params:
        return cls(
            agents=4,
            bare_tasks=300,
            cards_api=24,
            cards_cli=8,
            reps=2,
            reps_api=2,
            latency_samples=6,
            beat_samples=4,
        )


# --- the stub logs, read incrementally -----------------------------------------------------


@dataclass
class LogTail:
    """Card messages the stubs received, read from their logs as they grow."""

    paths: list[Path]
    offsets: dict[Path, int] = field(default_factory=dict)
    received: dict[str, list[float]] = field(default_factory=dict)
    last_t: float = 0.0

    def poll(self) -> None:
        import json

        for path in self.paths:
            if not path.exists():
                continue
            with path.open("rb") as fh:
                fh.seek(self.offsets.get(path, 0))
                data = fh.read()
            end = data.rfind(b"\n") + 1
            self.offsets[path] = self.offsets.get(path, 0) + end
            for line in data[:end].splitlines():
                record = json.loads(line)
                self.last_t = max(self.last_t, float(record.get("t", 0.0)))
                if record.get("kind") != "message":
                    continue
                match = CARD_RE.search(record["text"])
                if match:
                    self.received.setdefault(match.group(1), []).append(float(record["t"]))

    def count(self, prefix: str) -> int:
        self.poll()
        return sum(1 for card in self.received if card.startswith(prefix))


def tail_of(fleet: Fleet) -> LogTail:
    return LogTail([log_path(fleet.settings.run_dir, name) for name in fleet.roster.names()])


# --- the bare Celery baseline ----------------------------------------------------------------


@contextmanager
def bare_worker(broker_url: str, logs: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "BENCH_BROKER_URL": broker_url}
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "bench.bare_app",
        "worker",
        "-Q",
        "bench.bare",
        "-n",
        f"bare-{uuid.uuid4().hex[:6]}@bench",
        "--pool",
        "threads",
        "--concurrency",
        "4",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]
    with (logs / "bare-worker.log").open("ab") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        from bench import bare_app

        wait_until(
            lambda: bare_app.ping(broker_url), timeout=60, what="the bare Celery worker to answer"
        )
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bare_drain(broker_url: str, tasks: int) -> float:
    """No-op tasks/s from first send to last done, worker already listening."""
    from bench import bare_app

    client = redis.Redis.from_url(broker_url)
    client.delete(bare_app.COUNTER, bare_app.FINISHED)
    noop = bare_app.app_for(broker_url).tasks[bare_app.NOOP]
    start = time.time()
    for _ in range(tasks):
        noop.apply_async(args=(tasks,))
    wait_until(
        lambda: client.exists(bare_app.FINISHED) == 1, timeout=300, what="the bare worker to drain"
    )
    finished = float(client.get(bare_app.FINISHED) or 0)
    return tasks / (finished - start)


class RssSampler:
    """The peak RSS of a process tree while a load runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, tree_rss_mib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the fleet ----------------------------------------------------------------------------------


@contextmanager
def bench_fleet(
    home: Path, broker_url: str, agents: int, completion: str, nudge: bool = True
) -> Iterator[Fleet]:
    redis.Redis.from_url(broker_url).flushall()
    settings = fleet_settings(
        home,
        broker_url,
        f"fqb{uuid.uuid4().hex[:8]}",
        heartbeat_interval=1.0,
        host_status_interval=2.0,
        tick_interval=1.0,
        reclaim_interval=5.0,
        lease_ttl=120.0,
        nudge=nudge,
    )
    env = {"FLEET_STUB_WORK": "0", "FLEET_STUB_COMPLETE": completion}
    roster = stub_roster([(f"s{n}", "coder") for n in range(agents)], env=env)
    with running_fleet(settings, roster) as fleet:
        yield fleet


def worker_pid(fleet: Fleet) -> int:
    proc = fleet.processes.child("worker").process
    assert proc is not None
    return proc.pid


def wait_idle(fleet: Fleet, tail: LogTail, timeout: float = 120.0) -> None:
    """No open lease and every pane quiet: the state of "idle agents waiting"."""
    wait_until(lambda: not fleet.store.lease_owners(), timeout=timeout, what="no open lease")

    def quiet() -> bool:
        tail.poll()
        return time.time() - tail.last_t >= QUIET_AFTER_COMPLETION

    wait_until(quiet, timeout=timeout, interval=0.05, what="quiet panes")


def throughput(fleet: Fleet, tail: LogTail, prefix: str, cards: int) -> float:
    """Verified deliveries/s of ``cards`` cards enqueued at once."""
    wait_idle(fleet, tail)
    ids = [f"{prefix}{i:05d}" for i in range(cards)]
    start = time.time()
    fleet.store.create_many(NewCard(id=card, title=f"bench {card}") for card in ids)

    def delivered() -> list[Event]:
        return [
            e
            for e in fleet.store.events(kind="delivered", since=start - 1, limit=None)
            if e.card_id and e.card_id.startswith(prefix)
        ]

    wait_until(
        lambda: len(delivered()) >= cards,
        timeout=60 + cards,
        interval=0.1,
        what=f"{cards} cards delivered",
    )
    end = max(e.at.timestamp() for e in delivered())
    wait_until(lambda: tail.count(prefix) >= cards, timeout=30, what="stub logs")
    twice = [card for card in ids if len(tail.received.get(card, [])) != 1]
    assert not twice, f"cards not typed exactly once: {twice[:5]}"
    return cards / (end - start)


def latencies(fleet: Fleet, tail: LogTail, prefix: str, samples: int) -> list[float]:
    """ms from enqueue of one card to its text in an idle agent's pane."""
    out = []
    for i in range(samples):
        wait_idle(fleet, tail)
        card = f"{prefix}{i:04d}"
        start = time.time()
        fleet.store.create(NewCard(id=card, title=f"latency {i}"))

        def arrived(card: str = card) -> bool:
            tail.poll()
            return card in tail.received

        wait_until(arrived, timeout=30, interval=0.002, what=f"{card} in a pane")
        out.append((tail.received[card][0] - start) * 1000)
    return out


def run(quick: bool = False) -> list[Figure]:
    p = Params.quick() if quick else Params()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="fqb-fleet-") as tmp, redis_server() as srv:
        root = Path(tmp)
        (root / "logs").mkdir()
        with bare_worker(srv.url, root / "logs") as bare_proc:
            bare_drain(srv.url, min(200, p.bare_tasks))  # warm up
            bare_idle = tree_rss_mib(bare_proc.pid)
            with RssSampler(bare_proc.pid) as bare_load:
                bare_rates = [bare_drain(srv.url, p.bare_tasks) for _ in range(p.reps_api)]
        bare = Stats.of(bare_rates)
        rates: dict[str, list[float]] = {}
        with bench_fleet(root / "api", srv.url, p.agents, "api") as fleet:
            tail = tail_of(fleet)
            pid = worker_pid(fleet)
            time.sleep(1.0)  # let the first status round settle before reading idle RSS
            idle = [tree_rss_mib(pid)]
            throughput(fleet, tail, "w", max(p.agents, 8))  # warm up connections
            idle.append(tree_rss_mib(pid))
            with RssSampler(pid) as load:
                rates["api"] = [
                    throughput(fleet, tail, f"a{r}-", p.cards_api) for r in range(p.reps_api)
                ]
            lat_nudge = latencies(fleet, tail, "ln", p.latency_samples)
        with bench_fleet(root / "cli", srv.url, p.agents, "cli") as fleet:
            tail = tail_of(fleet)
            rates["cli"] = [throughput(fleet, tail, f"c{r}-", p.cards_cli) for r in range(p.reps)]
        with bench_fleet(root / "beat", srv.url, p.agents, "api", nudge=False) as fleet:
            lat_beat = latencies(fleet, tail_of(fleet), "lb", p.beat_samples)
    aim_e2e = "≥ 0.8 × bare drain"
    modes = (("api", "stub completes in-process"), ("cli", "stub runs `fleet card done`"))
    for mode, what in modes:
        figures.append(
            Figure(
                "fleet",
                f"(a) end-to-end cards/s, {p.agents} agents, {what}",
                "cards/s",
                Stats.of(rates[mode]),
                "bare Celery no-op drain, tasks/s",
                bare,
                aim=aim_e2e,
                extra={
                    "cards_per_rep": p.cards_api if mode == "api" else p.cards_cli,
                    "samples": rates[mode],
                    "baseline_samples": bare_rates,
                },
            )
        )
    nudge, beat = Stats.of(lat_nudge), Stats.of(lat_beat)
    figures.append(
        Figure(
            "fleet",
            "(b) enqueue → pane latency p50, nudge",
            "ms",
            nudge,
            "beat only (tick 1 s), p50",
            beat,
            higher_is_better=False,
            aim="p50 ≤ 25 ms, p99 ≤ 100 ms",
            extra={
                "p99_ms": _p99(lat_nudge),
                "beat_p99_ms": _p99(lat_beat),
                "samples": lat_nudge,
                "baseline_samples": lat_beat,
            },
        )
    )
    figures.append(
        Figure(
            "fleet",
            "(g) host worker RSS idle",
            "MiB",
            Stats.of(idle),
            "bare Celery worker RSS idle",
            Stats.of([bare_idle]),
            higher_is_better=False,
        )
    )
    figures.append(
        Figure(
            "fleet",
            "(g) host worker RSS under load (peak)",
            "MiB",
            Stats.of([load.peak]),
            "bare Celery worker under load (peak)",
            Stats.of([bare_load.peak]),
            higher_is_better=False,
        )
    )
    return figures


def _p99(samples: list[float]) -> float:
    from bench.common import percentile

    return percentile(sorted(samples), 0.99)
