"""Every benchmark, each figure beside its baseline from the same run.

    python -m bench [--quick] [--only fleet,tick] [--runtimes] [--out PATH]

Starts its own servers (Redis, PostgreSQL, tmux on a private socket, stub agents,
Celery worker and beat), prints a table, and writes ``bench/results/<date>.json``
(``<date>-quick.json`` with ``--quick``). Benchmarks: ``fleet`` (a) end-to-end,
(b) latency, (g) worker RSS; ``enqueue`` (c); ``tick`` (d); ``claims`` (e);
``tmux`` (f); ``scale`` (i) 1,000 agents over 10 host workers (``bench.scale_bench``).
``runtime`` (enqueue → prompt at the model for the real Claude Code and Codex TUIs) needs
the CLIs (``scripts/test.sh`` installs them): it runs only when named (``--only runtime``)
or with ``--runtimes``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Figure, fmt_num

Runner = Callable[[bool], list[Figure]]
NAMES = ("tmux", "tick", "claims", "enqueue", "fleet", "scale")
OPT_IN = ("runtime",)
"""Not in the default run: they need what a bare machine lacks (the agent CLIs)."""
RESULTS = Path(__file__).resolve().parent / "results"


def runner(name: str) -> Runner:
    """Imported on demand: ``--only tmux`` does not pay for importing Celery."""
    if name == "fleet":
        from bench.fleet_bench import run as fleet

        return fleet
    if name == "enqueue":
        from bench.enqueue_bench import run as enqueue

        return enqueue
    if name == "tick":
        from bench.tick_bench import run as tick

        return tick
    if name == "claims":
        from bench.claims_bench import run as claims

        return claims
    if name == "scale":
        from bench.scale_bench import run as scale

        return scale
    if name == "runtime":
        from bench.runtime_bench import run as runtime

        return runtime
    from bench.tmux_bench import run as tmux

    return tmux


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except OSError:
        return "missing"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, Any]:
    from tests.support.servers import pg_bin

    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    commit = _version(["git", "rev-parse", "--short", "HEAD"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "postgresql": _version([pg_bin("postgres"), "--version"]),
        "redis": _version(["redis-server", "--version"]),
        "tmux": _version(["tmux", "-V"]),
        "celery": _celery_version(),
        "commit": commit,
    }


def _celery_version() -> str:
    import celery

    return str(celery.__version__)


def print_table(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="fleet-queue benchmarks (median of repetitions; spread = min–max)")
    for column, justify in (
        ("figure", "left"),
        ("ours", "right"),
        ("spread", "right"),
        ("baseline", "left"),
        ("baseline value", "right"),
        ("ratio", "right"),
        ("aim", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for f in figures:
        base = f.baseline
        table.add_row(
            f.name,
            f"{fmt_num(f.value.median)} {f.unit}",
            f"{fmt_num(f.value.min)}–{fmt_num(f.value.max)} (n={f.value.n})",
            f.baseline_name or "",
            f"{fmt_num(base.median)} ({fmt_num(base.min)}–{fmt_num(base.max)})" if base else "",
            f"{f.ratio:.2f}" if f.ratio is not None else "",
            f.aim,
        )
    Console(width=200).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of {','.join(NAMES + OPT_IN)}"
    )
    parser.add_argument(
        "--runtimes", action="store_true", help="also run `runtime` (needs the Claude/Codex CLIs)"
    )
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/<date>.json)")
    args = parser.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",") if n.strip()] or list(NAMES)
    if args.runtimes and "runtime" not in chosen:
        chosen.append("runtime")
    unknown = [n for n in chosen if n not in NAMES + OPT_IN]
    if unknown:
        known = ", ".join(NAMES + OPT_IN)
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {known}")
    started = time.monotonic()
    figures: list[Figure] = []
    seconds: dict[str, float] = {}
    for name in chosen:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        figures += runner(name)(args.quick)
        seconds[name] = round(time.monotonic() - t0, 1)
        print(f"bench: {name} done in {seconds[name]} s", file=sys.stderr, flush=True)
    now = datetime.now(UTC)
    out = args.out or RESULTS / f"{now:%Y-%m-%d}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "date": now.isoformat(timespec="seconds"),
        "quick": args.quick,
        "benchmarks": chosen,
        "seconds": {**seconds, "total": round(time.monotonic() - started, 1)},
        "machine": machine(),
        "figures": [f.as_dict() for f in figures],
    }
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print_table(figures)
    if "scale" in chosen and not args.quick:  # the growth plot for docs/benchmarks.md
        from bench.scale_plot import main as scale_plot

        scale_plot([str(out)])
    print(f"wrote {out} ({report['seconds']['total']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
