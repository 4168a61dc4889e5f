"""Heartbeat sidecar for runtimes that cannot write ``run/<agent>.hb`` themselves.

Started beside the pane by ``fleet start``: while the pane's process lives it
writes the heartbeat with that pid every interval, then exits, so the heartbeat
goes stale on its own when the runtime dies. The status is the runtime's own
evidence where it keeps one (Claude Code's hooks, Codex's rollout:
``workers.evidence``), else ``ok``, and "busy" comes from the pane's activity.

    python -m workers.sidecar --agent NAME --pid PID --run-dir DIR [--interval S]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from workers.evidence import sidecar_beat
from workers.heartbeat import pid_alive


def pidfile(run_dir: Path, agent: str) -> Path:
    return run_dir / f"{agent}.sidecar.pid"


def run(agent: str, pid: int, run_dir: Path, interval: float) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pidfile(run_dir, agent).write_text(f"{os.getpid()}\n", encoding="utf-8")
    while pid_alive(pid) and not stop.is_set():
        sidecar_beat(run_dir, agent, pid)
        stop.wait(interval)
    return 0


def spawn(agent: str, pid: int, run_dir: Path, interval: float) -> int:
    """Start a detached sidecar (own session, survives the calling CLI); its pid."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / f"{agent}.sidecar.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.sidecar",
            "--agent",
            agent,
            "--pid",
            str(pid),
            "--run-dir",
            str(run_dir),
            "--interval",
            str(interval),
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    pidfile(run_dir, agent).write_text(f"{proc.pid}\n", encoding="utf-8")
    return proc.pid


def running_sidecar(run_dir: Path, agent: str) -> int | None:
    try:
        pid = int(pidfile(run_dir, agent).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) and _is_sidecar(pid, agent) else None


def stop_sidecar(run_dir: Path, agent: str) -> None:
    pid = running_sidecar(run_dir, agent)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    pidfile(run_dir, agent).unlink(missing_ok=True)


def _is_sidecar(pid: int, agent: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): trust the pidfile
    return b"workers.sidecar" in cmdline and agent.encode() in cmdline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.sidecar")
    parser.add_argument("--agent", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    return run(args.agent, args.pid, args.run_dir, args.interval)


if __name__ == "__main__":
    sys.exit(main())
