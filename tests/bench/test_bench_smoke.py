"""The benchmark harness runs end to end and writes the JSON the docs are built from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(60)
def test_quick_tmux_bench_writes_figures_beside_baselines(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "tmux", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=55,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert {"date", "quick", "benchmarks", "seconds", "machine", "figures"} <= report.keys()
    assert report["quick"] is True and report["benchmarks"] == ["tmux"]
    assert report["machine"]["cores"] >= 1 and report["machine"]["tmux"].startswith("tmux")
    figures = report["figures"]
    assert len(figures) == 4
    for figure in figures:
        assert {"name", "unit", "value", "baseline", "ratio", "aim"} <= figure.keys()
        for stats in (figure["value"], figure["baseline"]):
            assert stats["n"] >= 10
            assert 0 < stats["min"] <= stats["median"] <= stats["max"]
        assert figure["ratio"] > 0
    assert "(f) delivery, one line (tmux -C)" in proc.stdout


def test_unknown_benchmark_is_one_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nope", "--out", str(tmp_path / "x.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "unknown benchmark nope" in proc.stderr
    assert not (tmp_path / "x.json").exists()
