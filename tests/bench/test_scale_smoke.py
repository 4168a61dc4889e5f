"""The scale benchmark runs at small sizes, reports every figure, and leaves nothing running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUL = b"\0"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short TMPDIR: the bench's tmux sockets live under it (a socket path has a limit)."""
    path = Path(tempfile.mkdtemp(prefix="fqs-", dir="/tmp"))
    path.chmod(0o711)  # the test PostgreSQL runs as its own user and makes its dir here
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_under(path: Path) -> list[str]:
    """Processes whose environment names ``path`` (everything the bench started has it)."""
    found = []
    needle = str(path).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in environ:
            found.append(f"{entry}: {cmdline.replace(NUL, b' ').decode(errors='replace')}")
    return found


@pytest.mark.timeout(240)
def test_quick_scale_bench_measures_a_multi_host_fleet_and_stops_it(short_tmp: Path) -> None:
    out = short_tmp / "scale.json"
    env = {**os.environ, "TMPDIR": str(short_tmp)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "scale", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=220,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = {f["name"]: f for f in json.loads(out.read_text())["figures"]}
    latency = figures["(i) enqueue → pane latency p50, 20 agents over 2 hosts"]
    assert latency["value"]["n"] == 10 and latency["baseline"]["n"] == 5
    assert 0 < latency["value"]["median"] <= latency["extra"]["p99_ms"]
    assert 0 < latency["extra"]["enqueue_to_claim_p50_ms"] < latency["value"]["median"]
    assert latency["extra"]["redis_commands_per_card"] > 0
    assert latency["extra"]["pg_commits_per_card"] > 0
    rss = figures["(i) host worker RSS, median of 2 hosts, 10 agents each"]
    assert len(rss["extra"]["samples"]) == 2 and rss["ratio"] > 0
    for which in ("4 agents", "20 agents", "20 agents (4 available)"):
        tick = figures[f"(i) supervisor tick, {which}, 2,000 ready, postgresql"]
        assert tick["value"]["n"] == 2 and tick["value"]["median"] > 0
    assert figures["(i) claims/s inside one tick, 20 agents"]["value"]["median"] > 0
    growth = latency["extra"]["growth"]  # one row per fleet size, drawn by bench.scale_plot
    assert [(row["hosts"], row["agents"]) for row in growth] == [(1, 4), (1, 10), (2, 20)]
    assert all(row["p50_ms"] > 0 and row["fleet_tick_ms"] > 0 for row in growth)
    png = short_tmp / "growth.png"
    plot = subprocess.run(
        [sys.executable, "-m", "bench.scale_plot", str(out), "--png", str(png)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert plot.returncode == 0, plot.stderr[-2000:]
    assert "| enqueue → pane p50 (ms) |" in plot.stdout
    assert png.read_bytes().startswith(b"\x89PNG")
    assert processes_under(short_tmp) == []
