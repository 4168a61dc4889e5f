"""The host worker's CPU per card beside a bare Celery worker's per task, and where it goes.

    python -m bench.worker_profile [--cards 240] [--agents 8] [--reps 1] [--py-spy OUT]
                                   [--no-events]

One fleet of in-process stubs (``bench.fleet_bench``, figure (a)'s setup) and the bare
Celery app on the same Redis. CPU is the kernel's user+sys ticks of each worker's
process tree, read before and after a load: ``cards`` cards end to end for ours,
``cards`` no-op tasks for the bare worker; ``--reps`` pairs of the two loads, alternated
with both workers up, and the medians (each rep's ratio is of two loads seconds apart).
With ``--py-spy`` the host worker is sampled by py-spy while its load runs (``--gil``:
only the thread holding the GIL, so CPU in Python and not threads waiting; raw folded
stacks; ``top`` summarises them by own and total time; ``gil_ms_per_card`` is the
samples' time per card, the Python part of the CPU figure). ``--no-events`` turns
Celery's task events off in the worker (``FLEET_TASK_EVENTS=0``), to measure what
Flower's events cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def sampled(pid: int, spy: Path | None) -> Iterator[None]:
    """py-spy on ``pid`` while the block runs (raw folded stacks to ``spy``)."""
    if spy is None:
        yield
        return
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
         "-o", str(spy), "--pid", str(pid), "--rate", "100", "--gil"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.send_signal(2)  # SIGINT: py-spy writes what it has
        proc.wait(timeout=60)


def measure(
    cards: int, agents: int, spy: Path | None, events: bool, reps: int = 1
) -> dict[str, float]:
    """Per rep, the bare drain then the fleet's cards, seconds apart, both workers up the
    whole time: each rep's ratio is of two loads on the same machine state (other
    processes come and go on a shared machine); the figures are the reps' medians."""
    os.environ["FLEET_TASK_EVENTS"] = "1" if events else "0"
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="fqb-prof-") as tmp, redis_server() as srv:
        root = Path(tmp)
        (root / "logs").mkdir()
        with (
            bare_worker(srv.url, root / "logs") as bare,
            bench_fleet(root / "fleet", srv.url, agents, "api") as fleet,
        ):
            bare_drain(srv.url, 200)
            tail = tail_of(fleet)
            pid = worker_pid(fleet)
            throughput(fleet, tail, "w", max(agents, 8))
            for rep in range(reps):
                out: dict[str, float] = {}
                before = cpu_seconds(bare.pid)
                out["bare_tasks_per_s"] = bare_drain(srv.url, cards)
                out["bare_cpu_ms_per_task"] = 1000 * (cpu_seconds(bare.pid) - before) / cards
                part = None if spy is None else spy.with_name(f"{spy.name}.{rep}")
                with sampled(pid, part):
                    before = cpu_seconds(pid)
                    out["cards_per_s"] = throughput(fleet, tail, f"p{rep}-", cards)
                    out["worker_cpu_ms_per_card"] = 1000 * (cpu_seconds(pid) - before) / cards
                out["ratio_cpu"] = out["worker_cpu_ms_per_card"] / out["bare_cpu_ms_per_task"]
                out["ratio_rate"] = out["cards_per_s"] / out["bare_tasks_per_s"]
                runs.append(out)
    if spy is not None:  # the reps' stacks in one file
        parts = [spy.with_name(f"{spy.name}.{rep}") for rep in range(reps)]
        spy.write_text("".join(p.read_text() for p in parts if p.exists()))
        for p in parts:
            p.unlink(missing_ok=True)
    for n, out in enumerate(runs):
        print(f"rep {n}: " + " ".join(f"{k}={v:.2f}" for k, v in out.items()))
    return {key: statistics.median(out[key] for out in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_profile")
    parser.add_argument("--cards", type=int, default=240)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--py-spy", type=Path, help="write py-spy's raw stacks here")
    parser.add_argument("--no-events", action="store_true", help="Celery task events off")
    parser.add_argument("--reps", type=int, default=1, help="bare drain + fleet load pairs")
    args = parser.parse_args(argv)
    result = measure(args.cards, args.agents, args.py_spy, not args.no_events, args.reps)
    for key, value in result.items():
        print(f"{key:24} {value:10.2f}")
    if args.py_spy is not None and args.py_spy.exists():
        samples = sum(int(line.rpartition(" ")[2]) for line in args.py_spy.read_text().splitlines())
        print(f"{'gil_ms_per_card':24} {10.0 * samples / (args.cards * args.reps):10.2f}")
        print(f"{'own %':>6} {'total %':>7}  frame")
        for frame, own, total in top(args.py_spy):
            print(f"{own:6.1f} {total:7.1f}  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
