"""The host worker's CPU per card beside a bare Celery worker's per task, and where it goes.

    python -m bench.worker_profile [--cards 240] [--agents 8] [--py-spy OUT] [--no-events]

One fleet of in-process stubs (``bench.fleet_bench``, figure (a)'s setup) and the bare
Celery app on the same Redis. CPU is the kernel's user+sys ticks of each worker's
process tree, read before and after a load: ``cards`` cards end to end for ours,
``cards`` no-op tasks for the bare worker. With ``--py-spy`` the host worker is sampled
by py-spy while its load runs (``--gil``: only the thread holding the GIL, so CPU in
Python and not threads waiting; raw folded stacks; ``top`` summarises them by own and
total time). ``--no-events`` turns Celery's task events off in the worker
(``FLEET_TASK_EVENTS=0``), to measure what Flower's events cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import descendants
from bench.fleet_bench import bare_drain, bare_worker, bench_fleet, tail_of, throughput, worker_pid
from tests.support.servers import redis_server

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """user+sys of a process and its children still alive, in seconds."""
    total = 0
    for p in descendants(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def top(folded: Path, n: int = 15) -> list[tuple[str, float, float]]:
    """(frame, own %, total %) of the heaviest frames in py-spy's raw output."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        k = int(count)
        samples += k
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[_short(frames[-1])] += k
        for frame in {_short(f) for f in frames}:
            total[frame] += k
    if not samples:
        return []
    return [
        (frame, 100.0 * own[frame] / samples, 100.0 * total[frame] / samples)
        for frame, _ in own.most_common(n)
    ]


def _short(frame: str) -> str:
    """``fn (path/to/module.py:12)`` → ``fn (module.py)``: one row per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


def measure(cards: int, agents: int, spy: Path | None, events: bool) -> dict[str, float]:
    os.environ["FLEET_TASK_EVENTS"] = "1" if events else "0"
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="fqb-prof-") as tmp, redis_server() as srv:
        root = Path(tmp)
        (root / "logs").mkdir()
        with bare_worker(srv.url, root / "logs") as bare:
            bare_drain(srv.url, 200)
            before = cpu_seconds(bare.pid)
            out["bare_tasks_per_s"] = bare_drain(srv.url, cards)
            out["bare_cpu_ms_per_task"] = 1000 * (cpu_seconds(bare.pid) - before) / cards
        with bench_fleet(root / "fleet", srv.url, agents, "api") as fleet:
            tail = tail_of(fleet)
            pid = worker_pid(fleet)
            throughput(fleet, tail, "w", max(agents, 8))
            spy_proc = None
            if spy is not None:
                spy_proc = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                     "-o", str(spy), "--pid", str(pid), "--rate", "100", "--gil"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                time.sleep(1.0)
            before = cpu_seconds(pid)
            out["cards_per_s"] = throughput(fleet, tail, "p", cards)
            out["worker_cpu_ms_per_card"] = 1000 * (cpu_seconds(pid) - before) / cards
            if spy_proc is not None:
                spy_proc.send_signal(2)  # SIGINT: py-spy writes what it has
                spy_proc.wait(timeout=60)
    out["ratio_cpu"] = out["worker_cpu_ms_per_card"] / out["bare_cpu_ms_per_task"]
    out["ratio_rate"] = out["cards_per_s"] / out["bare_tasks_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_profile")
    parser.add_argument("--cards", type=int, default=240)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--py-spy", type=Path, help="write py-spy's raw stacks here")
    parser.add_argument("--no-events", action="store_true", help="Celery task events off")
    args = parser.parse_args(argv)
    result = measure(args.cards, args.agents, args.py_spy, not args.no_events)
    for key, value in result.items():
        print(f"{key:24} {value:10.2f}")
    if args.py_spy is not None and args.py_spy.exists():
        print(f"{'own %':>6} {'total %':>7}  frame")
        for frame, own, total in top(args.py_spy):
            print(f"{own:6.1f} {total:7.1f}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
