"""What every benchmark returns: figures measured beside their baseline, with spread.

A figure is the median of several repetitions, with min/max and p10/p90 as its
spread, and the baseline's median measured in the same run (these machines are
noisy: the ratio holds where the absolute value drifts).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Stats:
    median: float
    min: float
    max: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        ordered = sorted(samples)
        return cls(
            median=statistics.median(ordered),
            min=ordered[0],
            max=ordered[-1],
            p10=percentile(ordered, 0.10),
            p90=percentile(ordered, 0.90),
            n=len(ordered),
        )

    @property
    def spread_pct(self) -> float:
        """(max - min) / median: how much the repetitions disagree."""
        return 100.0 * (self.max - self.min) / self.median if self.median else 0.0


def fmt_num(value: float) -> str:
    """A figure with as many digits as it deserves: 12,345 / 123.4 / 1.23."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted samples."""
    index = min(len(ordered) - 1, max(0, round(p * len(ordered) + 0.5) - 1))
    return ordered[index]


@dataclass
class Figure:
    """One row of the table: our figure, its baseline, the ratio, the aim."""

    bench: str
    name: str
    unit: str
    value: Stats
    baseline_name: str | None = None
    baseline: Stats | None = None
    higher_is_better: bool = True
    aim: str = ""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """Ours / baseline (medians)."""
        if self.baseline is None or not self.baseline.median:
            return None
        return self.value.median / self.baseline.median

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = self.ratio
        out["value"]["spread_pct"] = self.value.spread_pct
        if self.baseline is not None:
            out["baseline"]["spread_pct"] = self.baseline.spread_pct
        return out


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and its children, MiB."""
    return sum(rss_kib(p) for p in descendants(pid)) / 1024.0
