"""Cost of one delivery into a pane: our control-mode path beside plain `tmux send-keys`.

    python -m bench.delivery_bench [--reps N]

Starts a private tmux server (temporary FLEET_HOME, unique socket) with one
stub agent, then times, in the same run and against the same pane:

- ``subprocess send-keys x2``: ``tmux send-keys -l TEXT`` and ``tmux send-keys Enter``
  as two processes (what a naive delivery does);
- ``subprocess send-keys chained``: both in one process (``… \\; send-keys Enter``),
  the ~3 ms process-start floor;
- ``deliver one line``: ``Deliverer.deliver(verify=False)``: label, sanitize, pane
  state check, ``send-keys -l`` + ``Enter`` over the persistent ``tmux -C`` client;
- ``deliver multi-line``: the paste path (``set-buffer`` + ``paste-buffer -p`` + ``Enter``);
- ``deliver + verify``: one line, waiting until the stub's pane shows it accepted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet_queue.roster import parse_roster
from fleet_queue.settings import Settings
from workers.delivery import Deliverer
from workers.sessions import start_agents
from workers.stub_agent import log_path
from workers.tmux import TmuxServer, pane_target


def _stats(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p10_ms": round(pct(0.10), 3),
        "p90_ms": round(pct(0.90), 3),
        "p99_ms": round(pct(0.99), 3),
        "reps": len(ordered),
        "samples_ms": [round(x, 4) for x in samples],
    }


def _time(fn: Callable[[int], object], reps: int) -> list[float]:
    samples = []
    for i in range(reps):
        start = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def run(reps: int = 200) -> dict[str, Any]:
    """Run the benchmark; figures in milliseconds per delivery."""
    with tempfile.TemporaryDirectory(prefix="fqb") as tmp:
        settings = Settings(home=Path(tmp), tmux_socket=f"fqb{uuid.uuid4().hex[:8]}", host="bench")
        roster = parse_roster(
            {"preset": "minimal", "agents": [{"name": "b1", "runtime": "stub", "class": "coder"}]}
        )
        server = TmuxServer.for_fleet(settings, roster)
        start_agents(settings, roster)
        try:
            _wait_for_stub(settings)
            return _measure(settings, roster, server, reps)
        finally:
            server.kill_server()


def _wait_for_stub(settings: Settings) -> None:
    path = log_path(settings.run_dir, "b1")
    deadline = time.monotonic() + 30
    while not (path.exists() and "start" in path.read_text()):
        if time.monotonic() > deadline:
            raise RuntimeError("stub agent did not start")
        time.sleep(0.05)


def _measure(settings: Settings, roster: Any, server: TmuxServer, reps: int) -> dict[str, Any]:
    target = pane_target("b1")
    env = server.env()

    def plain_two(i: int) -> None:
        subprocess.run(
            server.argv("send-keys", "-l", "-t", target, f"plain two {i}"), env=env, check=True
        )
        subprocess.run(server.argv("send-keys", "-t", target, "Enter"), env=env, check=True)

    def plain_chained(i: int) -> None:
        subprocess.run(
            server.argv(
                "send-keys",
                "-l",
                "-t",
                target,
                f"plain chained {i}",
                ";",
                "send-keys",
                "-t",
                target,
                "Enter",
            ),
            env=env,
            check=True,
        )

    deliverer = Deliverer(settings, roster)
    try:
        deliverer.deliver("b1", "warm up", source="bench", force=True, verify=False)
        results = {
            "subprocess send-keys x2": _stats(_time(plain_two, reps)),
            "subprocess send-keys chained": _stats(_time(plain_chained, reps)),
            "deliver one line": _stats(
                _time(
                    lambda i: deliverer.deliver(
                        "b1", f"one line {i}", source="bench", force=True, verify=False
                    ),
                    reps,
                )
            ),
            "deliver multi-line": _stats(
                _time(
                    lambda i: deliverer.deliver(
                        "b1",
                        f"first line {i}\nsecond line\nthird",
                        source="bench",
                        force=True,
                        verify=False,
                    ),
                    reps,
                )
            ),
            "deliver + verify": _stats(
                _time(
                    lambda i: deliverer.deliver(
                        "b1", f"verified {i}", source="bench", force=True, verify=True
                    ),
                    max(reps // 4, 10),
                )
            ),
        }
    finally:
        deliverer.close()
    floor = results["subprocess send-keys chained"]["median_ms"]
    ours = results["deliver one line"]["median_ms"]
    return {
        "tmux": subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip(),
        "python": sys.version.split()[0],
        "results": results,
        "speedup_vs_chained_subprocess": round(floor / ours, 1) if ours else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery_bench")
    parser.add_argument("--reps", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.reps), indent=2))


if __name__ == "__main__":
    main()
