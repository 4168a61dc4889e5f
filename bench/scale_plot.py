"""The scale run's growth, 10 → 100 → 1,000 agents, as a PNG (and a Markdown table).

    python -m bench.scale_plot bench/results/DATE-scale.json [--png docs/images/scale-growth.png]

Reads the ``growth`` rows that ``bench.scale_bench`` stores in its latency figure and
draws four panels on log-log axes, one point per fleet size: latency (p50, p99,
enqueue → claimed), the tick (as the fleet ran it, and in isolation with all agents
or 10 free), per-card load (Redis commands, PostgreSQL commits) and per-agent costs
(status round), plus claims/s inside a tick. ``python -m bench --only scale`` calls it
after writing its JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from bench.common import fmt_num

PNG = Path(__file__).resolve().parents[1] / "docs" / "images" / "scale-growth.png"

ROWS = (
    ("enqueue → pane p50 (ms)", "p50_ms"),
    ("enqueue → pane p99 (ms)", "p99_ms"),
    ("enqueue → claimed p50 (ms)", "to_claim_p50_ms"),
    ("tick that claimed a card, in the fleet, median (ms)", "fleet_tick_ms"),
    ("  of it run_tick (ms)", "fleet_run_tick_ms"),
    ("tick, every agent free, 100k ready (ms)", "tick_all_free_ms"),
    ("tick, 10 agents free, 100k ready (ms)", "tick_10_free_ms"),
    ("claims/s inside that tick", "claims_per_s"),
    ("status round per agent (ms)", "status_round_ms_per_agent"),
    ("Redis commands per card", "redis_commands_per_card"),
    ("PostgreSQL commits per card", "pg_commits_per_card"),
    ("host worker RSS, median (MiB)", "rss_mib"),
)

PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("enqueue → pane", "ms", (
        ("p50", "p50_ms"), ("p99", "p99_ms"), ("to claimed, p50", "to_claim_p50_ms"),
    )),
    ("supervisor tick", "ms", (
        ("in the fleet (claimed a card)", "fleet_tick_ms"),
        ("all agents free, 100k ready", "tick_all_free_ms"),
        ("10 agents free, 100k ready", "tick_10_free_ms"),
    )),
    ("load per card", "per card", (
        ("Redis commands", "redis_commands_per_card"),
        ("PostgreSQL commits", "pg_commits_per_card"),
    )),
    ("per agent / throughput", "ms · claims/s", (
        ("status round per agent (ms)", "status_round_ms_per_agent"),
        ("claims/s inside a tick", "claims_per_s"),
    )),
)  # fmt: skip


def growth_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    for figure in report["figures"]:
        rows = figure.get("extra", {}).get("growth")
        if rows:
            return list(rows)
    raise SystemExit(
        "no scale growth rows in this results file (run: python -m bench --only scale)"
    )


def table(rows: list[dict[str, Any]]) -> str:
    """The growth table as Markdown, one column per fleet size."""
    head = ["figure"] + [
        f"{r['agents']:,} agents, {r['hosts']} host{'s' * (r['hosts'] > 1)}" for r in rows
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for label, key in ROWS:
        cells = [fmt_num(r[key]) if r.get(key) is not None else "—" for r in rows]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], png: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda value, _pos: f"{value:,.4g}")
    between = FuncFormatter(lambda v, _pos: f"{v:,.4g}" if _leading(v) in (2, 5) else "")
    agents = [r["agents"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (name, unit, series) in zip(axes.flat, PANELS, strict=True):
        for label, key in series:
            points = [(a, r[key]) for a, r in zip(agents, rows, strict=True) if r.get(key)]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(agents, [f"{a:,}" for a in agents])
        ax.yaxis.set_major_formatter(plain)  # 400, not 4e2
        ax.yaxis.set_minor_formatter(between)  # 20 and 50 between 10 and 100
        ax.set_title(name)
        ax.set_xlabel("agents")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "fleet-queue scale run: growth from 10 to 1,000 agents")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)
    return png


def _leading(value: float) -> int:
    """The first digit of a positive number (2 for 0.2, 20, 2,000)."""
    return round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_plot")
    parser.add_argument("results", type=Path)
    parser.add_argument("--png", type=Path, default=PNG)
    parser.add_argument("--title", help="the plot's title (default: the run's date and commit)")
    args = parser.parse_args(argv)
    report = json.loads(args.results.read_text(encoding="utf-8"))
    rows = growth_of(report)
    commit = report.get("machine", {}).get("commit", "?")
    title = args.title or f"scale run {report.get('date', '')[:10]}, commit {commit}"
    print(table(rows))
    print(f"wrote {plot(rows, args.png, title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
