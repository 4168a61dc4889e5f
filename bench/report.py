"""A results file as the Markdown table of ``docs/benchmarks.md``.

    python -m bench.report bench/results/2026-11-25.json [--before OLD.json]

With ``--before``, a column shows the same figure from an older run (the "before"
of a change), matched by name.
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


def table(report: dict[str, Any], before: dict[str, Any] | None = None) -> str:
    old = {f["name"]: f for f in (before or {}).get("figures", [])}
    head = ["figure", "ours, median (min–max)", "n", "baseline", "baseline value", "ratio", "aim"]
    if before is not None:
        head.insert(2, "before")
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
        if before is not None:
            prior = old.get(f["name"])
            row.insert(2, fmt_num(prior["value"]["median"]) if prior else "")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("results", type=Path)
    parser.add_argument("--before", type=Path, help="an older results file to compare")
    args = parser.parse_args(argv)
    report = json.loads(args.results.read_text(encoding="utf-8"))
    before = json.loads(args.before.read_text(encoding="utf-8")) if args.before else None
    print(table(report, before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
