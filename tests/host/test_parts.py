"""Heartbeat protocol, runtime launch commands, the control client and the roster verbs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleet_queue.errors import HostError
from fleet_queue.roster import load_roster, parse_roster
from fleet_queue.settings import Settings
from tests.host.conftest import make_roster, stub
from workers.heartbeat import (
    Heartbeat,
    beat,
    format_heartbeat,
    is_healthy,
    parse_heartbeat,
    read_heartbeat,
    write_heartbeat,
)
from workers.runtimes import launch_plan
from workers.tmux import TmuxServer


def test_heartbeat_round_trip_and_health_boundary(tmp_path: Path) -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    hb = Heartbeat(ts=ts, pid=42, status="busy", card="C-7")
    assert format_heartbeat(hb) == f"ts={ts.isoformat()} pid=42 status=busy card=C-7\n"
    write_heartbeat(tmp_path, "a1", hb)
    assert read_heartbeat(tmp_path, "a1") == hb
    assert parse_heartbeat("ts=2026-01-02T03:04:05 pid=1 status=ok card=-") == Heartbeat(
        ts=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), pid=1, status="ok", card=None
    )
    for bad in (
        "",
        "garbage",
        "ts=yesterday pid=1",
        "ts=2026-01-02T03:04:05 pid=x",
        "ts=2026-01-02T03:04:05 pid=1 status=sleepy",
    ):
        assert parse_heartbeat(bad) is None
    assert read_heartbeat(tmp_path, "missing") is None
    assert is_healthy(hb, 5.0, ts + timedelta(seconds=15))
    assert not is_healthy(hb, 5.0, ts + timedelta(seconds=15.01))
    assert not is_healthy(None, 5.0)


def test_heartbeats_written_from_two_threads_at_once_never_fail(tmp_path: Path) -> None:
    """An agent beats from a timer thread while its work thread says busy (the stub does):
    neither may rename the other's temporary file away."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(status: str) -> None:
        start.wait()
        try:
            for _ in range(2000):
                beat(tmp_path, "a1", status=status, card="C-1" if status == "busy" else None)
        except BaseException as exc:  # the failure under test kills the thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in ("ok", "busy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert read_heartbeat(tmp_path, "a1") is not None
    assert [p.name for p in tmp_path.iterdir()] == ["a1.hb"]  # no temporary file left


def test_launch_commands(settings: Settings) -> None:
    roster = parse_roster(
        {
            "preset": "minimal",
            "agents": [
                {"name": "c", "runtime": "claude", "class": "coder", "model_hint": "opus"},
                {"name": "x", "runtime": "codex", "class": "coder", "unattended": False},
                {"name": "y", "runtime": "codex", "class": "coder", "model_hint": "gpt-5"},
                {"name": "p", "runtime": "pi", "class": "coder"},
                {"name": "s", "runtime": "stub", "class": "coder"},
                {
                    "name": "k",
                    "runtime": "mine",
                    "class": "coder",
                    "command": "my-agent --fast 'a b'",
                },
            ],
        }
    )
    plans = {a.name: launch_plan(settings, roster, a) for a in roster.agents}
    assert plans["c"].argv == ("claude", "--model", "opus", "--dangerously-skip-permissions")
    assert plans["c"].reset_command == "/clear" and plans["c"].native_heartbeat  # its hooks
    assert plans["c"].sidecar and not plans["s"].sidecar
    assert plans["x"].argv == ("codex",)
    assert plans["y"].argv == (
        "codex",
        "--model",
        "gpt-5",
        "--dangerously-bypass-approvals-and-sandbox",
    )
    assert plans["p"].argv == ("pi",) and plans["p"].reset_command == "/new"
    assert plans["s"].argv == (sys.executable, "-m", "workers.stub_agent", "--agent", "s")
    assert plans["s"].native_heartbeat
    assert plans["k"].argv == ("my-agent", "--fast", "a b") and plans["k"].reset_command is None


HOSTILE_ARGS = [
    '$HOME "q" \\ \\n',
    "semi ; colon",
    "#{session_name} ~ {x}",
    "tab\there",
    "line\nbreak",
    "é ✓ 日本",
    "-dash",
    "'single'",
    "ctl\x01\x7f",
]


def test_control_client_quotes_args_exactly_and_recovers(host_settings: Settings) -> None:
    server = TmuxServer.for_fleet(host_settings, None)
    server.ensure_started()
    with server.control() as ctl:
        for value in HOSTILE_ARGS:
            ctl.command("set-buffer", "-b", "t", "--", value)
            out = host_settings.run_dir / "buf"
            ctl.command("save-buffer", "-b", "t", str(out))
            assert out.read_text(encoding="utf-8") == value
        with pytest.raises(HostError, match=r"can.t find|no such"):
            ctl.command("send-keys", "-t", "=nosuch:", "x")
        assert ctl._proc is not None
        os.kill(ctl._proc.pid, signal.SIGKILL)
        ctl._proc.wait()
        assert ctl.command("display-message", "-p", "ok") == ["ok"]
    server.kill_server()
    with pytest.raises(HostError, match="not running"):
        server.control().command("display-message", "-p", "x")


def test_agent_add_and_remove_edit_the_roster(host_settings: Settings) -> None:
    roster = parse_roster(
        {
            "agents": [
                {"name": "orch", "runtime": "stub", "class": "orchestrator"},
                {"name": "enh", "runtime": "stub", "class": "enhancer"},
            ]
        }
    )
    path = host_settings.home / "roster.yaml"
    path.write_text(roster.to_yaml())
    env = {
        **os.environ,
        "FLEET_HOME": str(host_settings.home),
        "FLEET_TMUX_SOCKET": host_settings.tmux_socket,
        "FLEET_HOST": "testhost",
    }

    def fleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet_queue", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    added = fleet("agent", "add", "w1", "--runtime", "stub", "--class", "coder", "--json")
    assert added.returncode == 0, added.stderr
    # No user systemd manager here: the add says why the boot unit was not enabled.
    boot = json.loads(added.stdout)["boot_unit"]
    assert boot.startswith("not enabled: "), boot
    assert "w1" in load_roster(path).names()
    server = TmuxServer.for_fleet(host_settings, roster)
    assert server.has_session("w1")
    refused = fleet("agent", "remove", "orch")
    assert refused.returncode == 2 and "only orchestrator" in refused.stderr
    assert fleet("agent", "add", "w1", "--runtime", "stub", "--class", "coder").returncode == 2
    removed = fleet("agent", "remove", "w1")
    assert removed.returncode == 0, removed.stderr
    assert "boot unit: not disabled: " in removed.stdout
    assert load_roster(path).names() == ["orch", "enh"]
    assert not server.has_session("w1")
    assert make_roster(stub()).names() == ["a1"]
