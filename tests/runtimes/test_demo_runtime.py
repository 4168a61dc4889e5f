"""``fleet demo --runtime claude|codex|pi|opencode``: the coders are the real CLI on a double.

Run as a user runs it (``fleet demo`` in a process of its own): every card ends done, the
coders' cards through the real TUI → the double → ``fleet card done``; a missing CLI is one
line and nothing starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtimes.conftest import RUNTIME_BIN, _codex_daemons_under, runtime_binary
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.runtime, pytest.mark.timeout(400)]

CODER_CARDS = 3
"""The demo graph's implementer cards (api, cli, docs)."""


@pytest.fixture
def tmp() -> Iterator[Path]:
    """The demo's TMPDIR: short, as a tmux socket path must be (pytest's are too long).
    A Codex daemon a failed demo left under it is ended (the test says so first)."""
    path = Path(tempfile.mkdtemp(prefix="fqd", dir="/tmp"))
    try:
        yield path
    finally:
        for pid in _codex_daemons_under(os.fsencode(str(path))):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


def demo(tmp: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") and k != "IS_SANDBOX"}
    env |= {"PATH": path, "TMPDIR": str(tmp), "HOME": str(tmp)}
    return subprocess.run(
        [sys.executable, "-m", "fleet_queue", "demo", *args],
        env=env, capture_output=True, text=True, timeout=scaled(300),
    )  # fmt: skip


def with_cli_path() -> str:
    return f"{RUNTIME_BIN}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"


def run_real_demo(tmp: Path, runtime: str) -> dict[str, Any]:
    runtime_binary(runtime)
    timeout = str(scaled(180))
    args = ("--runtime", runtime, "--timeout", timeout, "--json")
    done = demo(tmp, *args, path=with_cli_path())
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["ok"] and report["cards"] == {"done": 8}, report
    assert report["runtime"] == runtime
    coder_deliveries = report["by_agent"].get("coder0", 0) + report["by_agent"].get("coder1", 0)
    assert coder_deliveries == CODER_CARDS, report
    # each coder card took the double two turns at least: the shell call, then its result
    assert report["model_turns"] >= 2 * CODER_CARDS, report
    assert not list(tmp.glob("fleet-demo-*")), "the throwaway home was left behind"
    return report


def test_demo_with_real_claude_code_coders_ends_every_card_done(tmp: Path) -> None:
    report = run_real_demo(tmp, "claude")
    sandbox = [n for n in report["notes"] if "IS_SANDBOX=1" in n]
    assert bool(sandbox) == (os.geteuid() == 0), report["notes"]


def test_demo_with_real_codex_coders_ends_every_card_done_and_leaves_no_daemon(
    tmp: Path,
) -> None:
    report = run_real_demo(tmp, "codex")
    assert report["notes"] == []
    assert _codex_daemons_under(os.fsencode(str(tmp))) == []


@pytest.mark.parametrize("runtime", ["pi", "opencode"])
def test_demo_with_real_pi_or_opencode_coders_ends_every_card_done(tmp: Path, runtime: str) -> None:
    report = run_real_demo(tmp, runtime)
    assert report["notes"] == []


@pytest.mark.parametrize("runtime", ["claude", "codex", "pi", "opencode"])
def test_demo_without_the_cli_is_one_line_and_starts_nothing(tmp: Path, runtime: str) -> None:
    done = demo(tmp, "--runtime", runtime, path=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"the {runtime} CLI is not on PATH" in lines[0]
    assert "scripts/runtimes.sh" in lines[0] and "runtimes/package.json" in lines[0]
    assert done.stdout == ""
    assert list(tmp.iterdir()) == []  # no home, no socket, nothing
