"""``fleet doctor`` on a running fleet and on a bare home; it changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleet_queue.cli import app as cli
from fleet_queue.roster import parse_roster, write_roster
from fleet_queue.settings import Settings
from tests.support.fleet import Fleet, stub_roster
from tests.support.servers import free_port
from tests.support.timing import scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def doctor(env: dict[str, str]) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(cli, ["doctor", "--json"], env=env)
    return result.exit_code, json.loads(result.stdout)


def levels(report: dict[str, object]) -> dict[str, str]:
    return {c["name"]: c["level"] for c in report["checks"]}  # type: ignore[attr-defined]


def test_a_running_fleet_is_healthy(team: Fleet) -> None:
    env = {
        "FLEET_HOME": str(team.settings.home),
        "FLEET_BROKER_URL": str(team.settings.broker_url),
        "FLEET_HOST": team.settings.host,
        "FLEET_TMUX_SOCKET": team.settings.tmux_socket,
    }
    code, report = doctor(env)
    assert code == 0 and report["ok"] is True
    assert levels(report) == {
        "roster": "ok",
        "store": "ok",
        "broker": "ok",
        "host worker": "ok",
        "beat": "ok",
        "pause": "ok",
        "targets": "ok",
        "tmux": "ok",
        "runtimes": "ok",
        "host pause": "ok",
        "state modes": "ok",
    }, [c for c in report["checks"] if c["level"] != "ok"]  # type: ignore[attr-defined]
    team.store.pause(reason="drill", by="test")
    code, report = doctor(env)
    assert code == 0 and levels(report)["pause"] == "warn"  # a warning is not a failure


def test_a_bare_home_fails_in_one_report_and_nothing_is_created(tmp_path: Path) -> None:
    home = tmp_path / "bare"
    home.mkdir()
    code, report = doctor({"FLEET_HOME": str(home)})
    assert code == 1 and report["ok"] is False
    found = levels(report)
    assert found["roster"] == "fail" and found["broker"] == "fail"
    assert found["store"] == "warn"
    checks = {c["name"]: c for c in report["checks"]}  # type: ignore[attr-defined]
    assert "fleet init" in checks["roster"]["detail"]
    assert "fleet up" in checks["broker"]["hint"]
    assert sorted(p.name for p in home.iterdir()) == []  # read-only: no store, no run/


def test_doctor_sees_the_connector_a_real_fleet_up_runs(settings: Settings) -> None:
    """``fleet up -d`` with a connector block starts ``fleet connector run`` as its child;
    the doctor finds it there (running, or restarting: its homeserver is a closed port)."""
    roster = stub_roster([("a0", "orchestrator"), ("e0", "enhancer")])
    roster["connector"] = {
        "kind": "matrix",
        "homeserver": f"http://127.0.0.1:{free_port()}",  # nothing listens: no login
        "user_id": "@fleet:localhost",
        "rooms": {"!room:localhost": {"allow": ["@alice:localhost"]}},
    }
    write_roster(parse_roster(roster, "test roster"), settings.effective_roster_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(
        FLEET_HOME=str(settings.home),
        FLEET_HOST=settings.host,
        FLEET_TMUX_SOCKET=settings.tmux_socket,
        FLEET_MATRIX_PASSWORD="pw",
    )

    def fleet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleet_queue", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=scaled(150),
        )

    started = fleet("up", "-d", "--json")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "connector" in [c["name"] for c in json.loads(started.stdout)["children"]]
        report = json.loads(fleet("doctor", "--json").stdout)
    finally:
        down = fleet("down")
    assert down.returncode == 0, down.stdout + down.stderr
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("connector", "connector library", "connector secrets", "chat backlog"):
        assert checks[name]["level"] == "ok", checks[name]
    running = checks["connector running"]
    assert "under fleet up (pid " in running["detail"], running
    assert running["level"] == ("ok" if running["detail"].startswith("under") else "warn")
