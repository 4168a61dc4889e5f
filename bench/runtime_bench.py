"""Enqueue → prompt received by the model, for the real Claude Code and Codex TUIs.

    python -m bench.runtime_bench [--quick] [--samples N]

One fleet, everything real: Redis, a Celery host worker + beat, tmux on a private
socket, and three agents of their own class: a stub, a Claude Code TUI and a Codex
TUI, both on the model double (``fleet_queue.model_double``). One card at a time
per agent, into an idle agent:

- Claude Code / Codex: enqueue time → the double's receipt of the main turn whose
  latest user text carries the card (the model saw it: delivery, the TUI's submit,
  the CLI's request building and the HTTP hop, all counted);
- the stub (baseline, same run): enqueue time → the stub's own receive time.

Each card is closed by the agent itself (the double's ``card_closer`` asks the
runtime's shell tool to run the card's ``fleet card done``), and the next sample
waits for ``done`` and an idle agent, so the figure is an idle-agent latency.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from bench.common import Figure, Stats, fmt_num, percentile
from bench.fleet_bench import tail_of
from fleet_queue.cards import NewCard
from fleet_queue.model_double import ModelDouble
from tests.support.fleet import Fleet, fleet_settings, running_fleet
from tests.support.poll import wait_until
from tests.support.servers import redis_server

REPO = Path(__file__).resolve().parents[1]
RUNTIME_BIN = REPO / ".cache" / "runtimes" / "node_modules" / ".bin"
KEY = "sk-model-double-bench-0123456789abcdef"
TURN_TIMEOUT = 90.0  # a whole card here takes 2-4 s; room for a loaded machine
RUNTIMES = ("stub", "claude", "codex")


@contextmanager
def _environment(root: Path) -> Iterator[None]:
    """The CLIs, `fleet` and the API keys where `fleet start` and the panes find them."""
    values = {
        "PATH": f"{RUNTIME_BIN}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "HOME": str(root / "userhome"),
        "ANTHROPIC_API_KEY": KEY,
        "OPENAI_API_KEY": KEY,
    }
    (root / "userhome").mkdir(parents=True)
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _roster(double: ModelDouble, work: Path) -> dict[str, object]:
    sandbox = {"IS_SANDBOX": "1"} if os.geteuid() == 0 else {}
    agents = [
        {"name": "st", "runtime": "stub", "class": "stub", "env": {"FLEET_STUB_WORK": "0"}},
        {
            "name": "cc",
            "runtime": "claude",
            "class": "claude",
            "working_directory": str(work),
            "env": {"ANTHROPIC_BASE_URL": double.url, **sandbox},
        },
        {
            "name": "cx",
            "runtime": "codex",
            "class": "codex",
            "working_directory": str(work),
            "env": {"OPENAI_BASE_URL": f"{double.url}/v1"},
        },
    ]
    return {"version": 1, "preset": "minimal", "agents": agents}


def _idle(fleet: Fleet, agent: str) -> bool:
    return any(
        s.agent == agent and s.readiness == "available" for s in fleet.store.agent_statuses()
    )


def _sample(fleet: Fleet, double: ModelDouble, runtime: str, agent: str, n: int) -> float:
    """ms from enqueue to the model (stub: the agent) receiving the card."""
    wait_until(lambda: _idle(fleet, agent), timeout=TURN_TIMEOUT, what=f"{agent} idle")
    card = f"rb-{runtime}-{n:03d}-{uuid.uuid4().hex[:6]}"
    tail = tail_of(fleet)
    tail.poll()
    start = time.time()
    fleet.store.create(NewCard(id=card, title=f"latency {n}", target_agent=agent))
    if runtime == "stub":

        def arrived() -> list[float]:
            tail.poll()
            return tail.received.get(card, [])

        received = wait_until(arrived, TURN_TIMEOUT, 0.002, what=f"{card} in the stub")[0]
    else:
        marker = f"fleet card done {card} "
        turn = double.wait_for(
            lambda r: r.is_main_turn and marker in r.last_user_text(), TURN_TIMEOUT
        )
        received = turn.received_at
    fleet.wait_status(card, "done", timeout=TURN_TIMEOUT)
    return (received - start) * 1000


def measure(samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {r: [] for r in RUNTIMES}
    with (
        tempfile.TemporaryDirectory(prefix="fqb-runtime-") as tmp,
        redis_server() as srv,
        ModelDouble() as double,
        _environment(Path(tmp)),
    ):
        root = Path(tmp)
        (root / "work").mkdir()
        redis.Redis.from_url(srv.url).flushall()
        settings = fleet_settings(
            root / "fleet",
            srv.url,
            f"fqr{uuid.uuid4().hex[:8]}",
            heartbeat_interval=1.0,
            host_status_interval=1.0,
            lease_ttl=120.0,
        )
        with running_fleet(settings, _roster(double, root / "work")) as fleet:
            agents = {"stub": "st", "claude": "cc", "codex": "cx"}
            for runtime, agent in agents.items():
                _sample(fleet, double, runtime, agent, -1)  # warm up: first turn, title request
            for n in range(samples):
                for runtime, agent in agents.items():
                    out[runtime].append(_sample(fleet, double, runtime, agent, n))
    return out


def run(quick: bool = False, samples: int | None = None) -> list[Figure]:
    measured = measure(samples or (5 if quick else 20))
    stub = Stats.of(measured["stub"])
    figures = []
    for runtime in ("claude", "codex"):
        ordered = sorted(measured[runtime])
        figures.append(
            Figure(
                "runtime",
                f"(h) enqueue → prompt at the model double, {runtime} TUI",
                "ms",
                Stats.of(ordered),
                "stub agent, enqueue → received",
                stub,
                higher_is_better=False,
                extra={
                    "p99_ms": percentile(ordered, 0.99),
                    "baseline_p99_ms": percentile(sorted(measured["stub"]), 0.99),
                    "samples": measured[runtime],
                    "baseline_samples": measured["stub"],
                },
            )
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.runtime_bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int)
    args = parser.parse_args()
    figures = run(args.quick, args.samples)
    base = figures[0].baseline
    assert base is not None
    stub_p99 = figures[0].extra["baseline_p99_ms"]
    print(f"{'runtime':8} {'p50 ms':>8} {'p99 ms':>8} {'n':>3}")
    print(f"{'stub':8} {fmt_num(base.median):>8} {fmt_num(stub_p99):>8} {base.n:>3}")
    for fig in figures:
        name = "claude" if "claude" in fig.name else "codex"
        p99 = fig.extra["p99_ms"]
        print(f"{name:8} {fmt_num(fig.value.median):>8} {fmt_num(p99):>8} {fig.value.n:>3}")


if __name__ == "__main__":
    main()
