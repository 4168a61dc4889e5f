"""A results file as the Markdown table of ``docs/benchmarks.md``.

    python -m bench.report bench/results/2026-11-26.json [--before OLD.json ...]

Each ``--before`` adds a column with the same figure (its median) from an older run,
matched by name, headed by that run's file name: the "before" of a change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import fmt_num


def _cell(stats: dict[str, Any] | None) -> str:
    if not stats:
        return ""
    return f"{fmt_num(stats['median'])} ({fmt_num(stats['min'])}–{fmt_num(stats['max'])})"


def table(report: dict[str, Any], befores: list[tuple[str, dict[str, Any]]] | None = None) -> str:
    """The Markdown table; ``befores`` are (column label, older report) pairs."""
    olds = [(label, {f["name"]: f for f in old.get("figures", [])}) for label, old in befores or []]
    head = ["figure", "ours, median (min–max)", "n", "baseline", "baseline value", "ratio", "aim"]
    head[2:2] = [label for label, _ in olds]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for f in report["figures"]:
        ratio = f.get("ratio")
        row = [
            f["name"],
            f"{_cell(f['value'])} {f['unit']}",
            str(f["value"]["n"]),
            f.get("baseline_name") or "",
            _cell(f.get("baseline")),
            f"{ratio:.2f}" if ratio is not None else "",
            f.get("aim") or "",
        ]
        row[2:2] = [
            fmt_num(by_name[f["name"]]["value"]["median"]) if f["name"] in by_name else ""
            for _, by_name in olds
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("results", type=Path)
    parser.add_argument(
        "--before", type=Path, action="append", default=[], help="an older results file"
    )
    args = parser.parse_args(argv)
    report = json.loads(args.results.read_text(encoding="utf-8"))
    befores = [(path.stem, json.loads(path.read_text(encoding="utf-8"))) for path in args.before]
    print(table(report, befores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
