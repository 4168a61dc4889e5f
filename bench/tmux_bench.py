"""(f) tmux cost per delivery vs plain ``tmux send-keys`` processes (``bench.delivery_bench``)."""

from __future__ import annotations

from bench.common import Figure, Stats
from bench.delivery_bench import run as run_delivery

BASELINE = "subprocess send-keys x2"


def run(quick: bool = False) -> list[Figure]:
    figures = run_delivery(reps=40 if quick else 300)
    results = figures["results"]
    base = Stats.of(results[BASELINE]["samples_ms"])
    chained = Stats.of(results["subprocess send-keys chained"]["samples_ms"])
    rows = [
        ("deliver one line", "(f) delivery, one line (tmux -C)", base, BASELINE, "≤ 1 ms"),
        (
            "deliver one line",
            "(f) delivery, one line vs one chained process",
            chained,
            "subprocess send-keys chained",
            "≤ 1 ms",
        ),
        ("deliver multi-line", "(f) delivery, multi-line paste (tmux -C)", base, BASELINE, ""),
        ("deliver + verify", "(f) delivery + verify, one line", base, BASELINE, ""),
    ]
    return [
        Figure(
            "tmux",
            label,
            "ms",
            Stats.of(results[key]["samples_ms"]),
            base_name,
            baseline,
            higher_is_better=False,
            aim=aim,
            extra={"tmux": figures["tmux"]},
        )
        for key, label, baseline, base_name, aim in rows
    ]
